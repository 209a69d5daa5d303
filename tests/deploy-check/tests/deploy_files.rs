//! The files under `deploy/` checked against the `companion` binary (its subcommands and
//! options), the settings the server reads (`server/src/config.rs`), the API it serves
//! (`openapi/openapi.json`) and each other. Each test gathers every problem before failing, so one
//! run names them all.
#![expect(
    clippy::expect_used,
    reason = "test helpers should fail loudly at the point of failure"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use companion_deploy_check::invocation::{self, Invocation};
use companion_deploy_check::yaml::{self, Value};
use companion_deploy_check::{
    binary, dockerfile, files, parse_duration_seconds, port_of_address, settings, systemd,
};

/// Settings whose values are secrets: they never appear in a ConfigMap, a compose file or an
/// example env file with a value.
const SECRET_SETTINGS: &[&str] = &[
    "DATABASE_URL",
    "COMPANION_JWT_KEYS",
    "COMPANION_METRICS_TOKEN",
    "COMPANION_ADMIN_PASSWORD",
];

/// The placeholder example env files use where a secret goes.
const PLACEHOLDER: &str = "CHANGE-ME";

/// The setting that bounds graceful shutdown; every stop deadline must outlast it.
const SHUTDOWN_TIMEOUT: &str = "COMPANION_SHUTDOWN_TIMEOUT";

fn deploy(relative: &str) -> PathBuf {
    files::deploy_dir().join(relative)
}

fn read(path: &Path) -> String {
    files::read(path).unwrap_or_else(|e| panic!("{e}"))
}

fn documents(path: &Path) -> Vec<Value> {
    yaml::documents(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", files::display(path)))
}

fn files_under(relative: &str) -> Vec<PathBuf> {
    files::files_under(&deploy(relative)).unwrap_or_else(|e| panic!("{e}"))
}

fn fail_on(problems: &[String]) {
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// Every Kubernetes manifest document under deploy/k8s (the kustomization aside), with its file.
fn kubernetes_documents() -> Vec<(String, Value)> {
    let manifests: Vec<(String, Value)> = files_under("k8s")
        .into_iter()
        .filter(|path| files::is_yaml(path) && !path.ends_with("kustomization.yaml"))
        .flat_map(|path| {
            let name = files::display(&path);
            documents(&path)
                .into_iter()
                .map(move |document| (name.clone(), document))
        })
        .collect();
    assert!(!manifests.is_empty(), "no manifests under deploy/k8s");
    manifests
}

fn kind(document: &Value) -> &str {
    yaml::str_at(document, &["kind"]).unwrap_or_default()
}

/// The ConfigMap's data (there is one).
fn kubernetes_config() -> (String, BTreeMap<String, String>) {
    let config_maps: Vec<(String, Value)> = kubernetes_documents()
        .into_iter()
        .filter(|(_, document)| kind(document) == "ConfigMap")
        .collect();
    assert_eq!(
        config_maps.len(),
        1,
        "expected one ConfigMap under deploy/k8s"
    );
    let (_, document) = &config_maps[0];
    let name = yaml::str_at(document, &["metadata", "name"])
        .unwrap_or_default()
        .to_owned();
    let data = yaml::at(document, &["data"])
        .and_then(Value::as_mapping)
        .map(|data| {
            data.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), yaml::scalar_text(v)?)))
                .collect()
        })
        .unwrap_or_default();
    (name, data)
}

/// The pod templates (or pods) of the manifests that run a `companion` container: the mapping
/// holding `containers`, with where it was found.
fn kubernetes_pod_specs() -> Vec<(String, Value, Value)> {
    let mut found = Vec::new();
    for (file, document) in kubernetes_documents() {
        for spec in yaml::mappings(&document) {
            let Some(containers) = spec.get("containers").and_then(Value::as_sequence) else {
                continue;
            };
            if containers
                .iter()
                .any(|c| yaml::str_at(c, &["image"]).is_some_and(invocation::is_companion_image))
            {
                let origin = format!("{file}: {}", invocation::kubernetes_name(&document));
                found.push((origin, document.clone(), Value::Mapping(spec.clone())));
            }
        }
    }
    assert!(
        !found.is_empty(),
        "no pod runs the companion image under deploy/k8s"
    );
    found
}

fn compose() -> Value {
    let mut documents = documents(&deploy("compose.yaml"));
    assert_eq!(documents.len(), 1, "compose.yaml holds one document");
    documents.remove(0)
}

/// The compose services that run the `companion` image.
fn compose_companion_services() -> Vec<(String, Value)> {
    let compose = compose();
    let services: Vec<(String, Value)> = yaml::at(&compose, &["services"])
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .filter(|(_, service)| {
            yaml::str_at(service, &["image"]).is_some_and(invocation::is_companion_image)
        })
        .map(|(name, service)| (name.as_str().unwrap_or("?").to_owned(), service.clone()))
        .collect();
    assert!(
        !services.is_empty(),
        "no compose service runs the companion image"
    );
    services
}

fn systemd_units() -> Vec<(String, String)> {
    let units: Vec<(String, String)> = files_under("systemd")
        .into_iter()
        .filter(|path| path.extension().is_some_and(|e| e == "service"))
        .map(|path| (files::display(&path), read(&path)))
        .collect();
    assert!(!units.is_empty(), "no systemd units under deploy/systemd");
    units
}

fn systemd_environment() -> BTreeMap<String, String> {
    settings::env_file(&read(&deploy("systemd/companion.env.example")))
}

fn dockerfile_stage() -> Vec<dockerfile::Instruction> {
    let instructions = dockerfile::parse(&read(&deploy("Dockerfile")));
    dockerfile::final_stage(&instructions).to_vec()
}

/// The port the image listens on, from its `COMPANION_ADDR`.
fn image_port() -> u16 {
    let environment = dockerfile::environment(&dockerfile_stage());
    let address = environment
        .get("COMPANION_ADDR")
        .expect("the Dockerfile sets COMPANION_ADDR");
    port_of_address(address).unwrap_or_else(|| panic!("COMPANION_ADDR={address} has no port"))
}

/// The paths the API answers GET on, from the committed OpenAPI document.
fn api_get_paths() -> BTreeSet<String> {
    let text = read(&files::workspace_root().join("openapi/openapi.json"));
    let document: serde_json::Value = serde_json::from_str(&text).expect("openapi.json parses");
    let paths = document["paths"]
        .as_object()
        .expect("openapi.json has paths");
    paths
        .iter()
        .filter(|(_, operations)| operations.get("get").is_some())
        .map(|(path, _)| path.clone())
        .collect()
}

/// Every `companion` command line in compose, Kubernetes and systemd files, by form.
fn invocations_by_form() -> BTreeMap<&'static str, Vec<Invocation>> {
    let compose_file = files::display(&deploy("compose.yaml"));
    let mut forms = BTreeMap::new();
    forms.insert("compose", invocation::compose(&compose(), &compose_file));
    forms.insert(
        "Kubernetes",
        kubernetes_documents()
            .iter()
            .flat_map(|(file, document)| invocation::kubernetes(document, file))
            .collect(),
    );
    forms.insert(
        "systemd",
        systemd_units()
            .iter()
            .flat_map(|(file, unit)| invocation::systemd(unit, file))
            .collect(),
    );
    forms
}

#[test]
fn every_yaml_file_under_deploy_parses() {
    let yaml_files: Vec<PathBuf> = files::files_under(&files::deploy_dir())
        .expect("deploy/ can be listed")
        .into_iter()
        .filter(|path| files::is_yaml(path))
        .collect();
    assert!(
        yaml_files.contains(&deploy("compose.yaml"))
            && yaml_files.contains(&deploy("k8s/kustomization.yaml")),
        "compose.yaml or k8s/kustomization.yaml is missing: {yaml_files:?}"
    );
    let mut problems = Vec::new();
    for path in &yaml_files {
        match yaml::documents(&read(path)) {
            Ok(documents) if documents.is_empty() => {
                problems.push(format!("{}: no document", files::display(path)));
            }
            Ok(_) => {}
            Err(e) => problems.push(format!("{}: {e}", files::display(path))),
        }
    }
    fail_on(&problems);
}

#[test]
fn every_kubernetes_manifest_has_a_kind_and_a_name_and_leaves_the_namespace_open() {
    let mut problems = Vec::new();
    for (file, document) in kubernetes_documents() {
        for field in [&["apiVersion"][..], &["kind"], &["metadata", "name"]] {
            if yaml::str_at(&document, field).is_none() {
                problems.push(format!("{file}: no {}", field.join(".")));
            }
        }
        if yaml::at(&document, &["metadata", "namespace"]).is_some() {
            problems.push(format!(
                "{file}: {} names a namespace; the manifests must fit any namespace",
                invocation::kubernetes_name(&document)
            ));
        }
    }
    let kustomization = documents(&deploy("k8s/kustomization.yaml"));
    if kustomization
        .iter()
        .any(|document| document.get("namespace").is_some())
    {
        problems.push("deploy/k8s/kustomization.yaml pins a namespace".into());
    }
    fail_on(&problems);
}

#[test]
fn the_kustomization_lists_every_manifest_beside_it() {
    let kustomization = documents(&deploy("k8s/kustomization.yaml"));
    let listed: BTreeSet<String> = kustomization
        .iter()
        .filter_map(|document| document.get("resources").and_then(yaml::words))
        .flatten()
        .collect();
    let present: BTreeSet<String> = files_under("k8s")
        .iter()
        .filter(|path| files::is_yaml(path) && !path.ends_with("kustomization.yaml"))
        .filter_map(|path| {
            path.strip_prefix(deploy("k8s"))
                .ok()
                .map(|p| p.display().to_string())
        })
        .collect();
    assert_eq!(
        listed, present,
        "deploy/k8s/kustomization.yaml `resources` (left) differ from the manifests in deploy/k8s (right)"
    );
}

#[test]
fn the_dockerfile_starts_an_existing_companion_subcommand_as_a_numeric_non_root_user() {
    let stage = dockerfile_stage();
    let entrypoint = dockerfile::last(&stage, "ENTRYPOINT")
        .and_then(|i| dockerfile::exec_form(&i.arguments))
        .expect("the runtime stage has an exec-form ENTRYPOINT");
    let cmd = dockerfile::last(&stage, "CMD")
        .and_then(|i| dockerfile::exec_form(&i.arguments))
        .expect("the runtime stage has an exec-form CMD");
    let mut words = entrypoint;
    words.extend(cmd);
    let image = Invocation {
        origin: "deploy/Dockerfile: ENTRYPOINT + CMD".into(),
        program: words.remove(0),
        args: words,
    };
    assert!(
        image.runs_companion(),
        "{}: runs {}, not companion",
        image.origin,
        image.program
    );
    let binary = binary::companion().unwrap_or_else(|e| panic!("{e}"));
    if let Err(problem) = binary::check_arguments(binary, &image.args) {
        panic!(
            "{}: `companion {}` {problem}",
            image.origin,
            image.command_line()
        );
    }

    let user = dockerfile::last(&stage, "USER").expect("the runtime stage sets USER");
    let uid = user.arguments.split(':').next().unwrap_or_default();
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid != 0),
        "USER {} must be a numeric uid other than 0 (Kubernetes verifies runAsNonRoot only for \
         numeric users)",
        user.arguments
    );
}

#[test]
fn the_dockerfile_exposes_and_health_checks_the_port_its_listen_address_names() {
    let stage = dockerfile_stage();
    let environment = dockerfile::environment(&stage);
    let address = environment
        .get("COMPANION_ADDR")
        .expect("the runtime stage sets COMPANION_ADDR");
    let port = image_port();
    let mut problems = Vec::new();
    if address.starts_with("127.")
        || address.starts_with("[::1]")
        || address.starts_with("localhost")
    {
        problems.push(format!(
            "COMPANION_ADDR={address} listens on loopback only, unreachable from outside the container"
        ));
    }
    let exposed: BTreeSet<String> = stage
        .iter()
        .filter(|i| i.keyword == "EXPOSE")
        .flat_map(|i| i.arguments.split_whitespace().map(str::to_owned))
        .map(|p| p.trim_end_matches("/tcp").to_owned())
        .collect();
    if exposed != BTreeSet::from([port.to_string()]) {
        problems.push(format!(
            "EXPOSE {exposed:?} differs from the port of COMPANION_ADDR={address}"
        ));
    }

    let health_check = dockerfile::last(&stage, "HEALTHCHECK")
        .and_then(|i| dockerfile::health_check_command(&i.arguments))
        .expect("the runtime stage has a HEALTHCHECK with a command");
    let url = health_check
        .iter()
        .find_map(|word| word.strip_prefix("http://"))
        .expect("the health check asks an http:// URL");
    let (authority, path) = url.split_once('/').unwrap_or((url, ""));
    let path = format!("/{path}");
    if port_of_address(authority) != Some(port) {
        problems.push(format!(
            "the health check asks {authority}, not port {port} of COMPANION_ADDR"
        ));
    }
    if !api_get_paths().contains(&path) {
        problems.push(format!(
            "the health check asks {path}, which openapi/openapi.json has no GET for"
        ));
    }
    let program = &health_check[0];
    let installed = program == "companion"
        || stage
            .iter()
            .filter(|i| i.keyword == "RUN")
            .any(|i| i.arguments.split_whitespace().any(|word| word == program));
    if !installed {
        problems.push(format!(
            "the health check runs {program}, which the runtime stage does not install"
        ));
    }
    fail_on(&problems);
}

#[test]
fn every_companion_command_in_compose_kubernetes_and_systemd_exists() {
    let binary = binary::companion().unwrap_or_else(|e| panic!("{e}"));
    let mut problems = Vec::new();
    let mut checked = 0;
    for invocation in invocations_by_form().into_values().flatten() {
        checked += 1;
        if !invocation.runs_companion() {
            problems.push(format!(
                "{}: runs {} on the companion image; only companion itself can be checked",
                invocation.origin, invocation.program
            ));
        } else if let Err(problem) = binary::check_arguments(binary, &invocation.args) {
            problems.push(format!(
                "{}: `companion {}` {problem}",
                invocation.origin,
                invocation.command_line()
            ));
        }
    }
    assert!(checked > 0, "no companion command found under deploy/");
    fail_on(&problems);
}

#[test]
fn compose_kubernetes_and_systemd_each_migrate_serve_and_work() {
    let mut problems = Vec::new();
    for (form, invocations) in invocations_by_form() {
        let command_lines: BTreeSet<String> =
            invocations.iter().map(Invocation::command_line).collect();
        for expected in ["migrate", "serve --no-workers", "work"] {
            if !command_lines.contains(expected) {
                problems.push(format!(
                    "{form} never runs `companion {expected}` (it runs: {command_lines:?})"
                ));
            }
        }
    }
    fail_on(&problems);
}

/// The server refuses to start on a `COMPANION_*` variable it does not read, so a name in a
/// deployment file that is missing from `KEYS` in config.rs is an outage, not a typo to allow.
#[test]
fn every_companion_setting_named_under_deploy_is_one_the_server_reads() {
    let config = read(&files::workspace_root().join("server/src/config.rs"));
    let known = settings::known_settings(&config).unwrap_or_else(|e| panic!("{e}"));
    let mut problems = Vec::new();
    for path in files::files_under(&files::deploy_dir()).expect("deploy/ can be listed") {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for name in settings::named_settings(&text).difference(&known) {
            problems.push(format!(
                "{}: {name} is not in KEYS in server/src/config.rs (the server refuses to start \
                 on an unknown COMPANION_* setting)",
                files::display(&path)
            ));
        }
    }
    fail_on(&problems);
}

#[test]
fn kubernetes_probes_ask_paths_the_api_serves_on_a_port_the_container_declares() {
    let paths = api_get_paths();
    let mut problems = Vec::new();
    for (file, document) in kubernetes_documents() {
        for container in invocation::kubernetes_containers(&document) {
            let origin = format!(
                "{file}: {}, container {}",
                invocation::kubernetes_name(&document),
                yaml::str_at(container, &["name"]).unwrap_or("?")
            );
            let ports: Vec<&Value> = container
                .get("ports")
                .and_then(Value::as_sequence)
                .map(|ports| ports.iter().collect())
                .unwrap_or_default();
            let serves = container
                .get("args")
                .and_then(yaml::words)
                .is_some_and(|args| args.first().is_some_and(|a| a == "serve"));
            for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                let Some(get) = yaml::at(container, &[probe, "httpGet"]) else {
                    if serves && probe != "startupProbe" {
                        problems.push(format!("{origin}: serves HTTP but has no {probe}"));
                    }
                    continue;
                };
                let path = yaml::str_at(get, &["path"]).unwrap_or_default();
                if !paths.contains(path) {
                    problems.push(format!(
                        "{origin}: {probe} asks {path:?}, which openapi/openapi.json has no GET for"
                    ));
                }
                let port = get.get("port");
                let declared = ports.iter().any(|declared| {
                    port.is_some_and(|port| {
                        declared.get("name") == Some(port)
                            || declared.get("containerPort") == Some(port)
                    })
                });
                if !declared {
                    problems.push(format!(
                        "{origin}: {probe} asks port {port:?}, which the container does not declare"
                    ));
                }
            }
        }
    }
    fail_on(&problems);
}

/// The port of a container's `COMPANION_WORKER_ADDR`, if it sets one.
fn worker_port(container: &Value) -> Option<u16> {
    container
        .get("env")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .find(|e| yaml::str_at(e, &["name"]) == Some("COMPANION_WORKER_ADDR"))
        .and_then(|e| yaml::str_at(e, &["value"]))
        .and_then(port_of_address)
}

#[test]
fn every_published_port_is_the_port_the_server_listens_on() {
    let mut problems = Vec::new();

    let (_, config) = kubernetes_config();
    let address = config
        .get("COMPANION_ADDR")
        .expect("the ConfigMap sets COMPANION_ADDR");
    let port = port_of_address(address).expect("the ConfigMap's COMPANION_ADDR has a port");
    let mut named_ports = BTreeMap::new();
    for (origin, _, spec) in kubernetes_pod_specs() {
        for container in invocation::kubernetes_containers(&spec) {
            // A worker listens (for health and metrics) on COMPANION_WORKER_ADDR instead.
            let port = worker_port(container).unwrap_or(port);
            for declared in container
                .get("ports")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                let number = declared.get("containerPort").and_then(Value::as_u64);
                if number != Some(u64::from(port)) {
                    problems.push(format!(
                        "{origin}: containerPort {number:?} is not {port}, the port of COMPANION_ADDR"
                    ));
                }
                if let Some(name) = yaml::str_at(declared, &["name"]) {
                    named_ports.insert(name.to_owned(), number);
                }
            }
        }
    }
    for (file, document) in kubernetes_documents() {
        let annotation = yaml::str_at(
            &document,
            &[
                "spec",
                "template",
                "metadata",
                "annotations",
                "prometheus.io/port",
            ],
        );
        let expected = yaml::at(&document, &["spec", "template", "spec"])
            .map(invocation::kubernetes_containers)
            .into_iter()
            .flatten()
            .find_map(worker_port)
            .unwrap_or(port);
        if let Some(annotation) = annotation
            && annotation != expected.to_string()
        {
            problems.push(format!(
                "{file}: prometheus.io/port {annotation} is not {expected}"
            ));
        }
        if kind(&document) == "Service" {
            for service_port in yaml::at(&document, &["spec", "ports"])
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                let target = service_port.get("targetPort");
                let resolved = match target {
                    Some(Value::String(name)) => named_ports.get(name).copied().flatten(),
                    Some(other) => other.as_u64(),
                    None => service_port.get("port").and_then(Value::as_u64),
                };
                if resolved != Some(u64::from(port)) {
                    problems.push(format!(
                        "{file}: Service targetPort {target:?} does not reach port {port}"
                    ));
                }
            }
        }
    }

    let image_port = image_port();
    for (name, service) in compose_companion_services() {
        if yaml::at(&service, &["environment", "COMPANION_ADDR"]).is_some() {
            problems.push(format!(
                "compose service {name} overrides COMPANION_ADDR; publish the image's port instead"
            ));
        }
        for mapping in service
            .get("ports")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let text = yaml::scalar_text(mapping).unwrap_or_default();
            let target = text.rsplit(':').next().unwrap_or_default();
            if target.trim_end_matches("/tcp") != image_port.to_string() {
                problems.push(format!(
                    "compose service {name} publishes {text}, not the image's port {image_port}"
                ));
            }
        }
    }
    fail_on(&problems);
}

#[test]
fn every_stop_deadline_outlasts_the_graceful_shutdown_timeout() {
    let mut problems = Vec::new();
    let seconds = |value: Option<&str>| value.and_then(parse_duration_seconds);

    let (_, config) = kubernetes_config();
    let shutdown = seconds(config.get(SHUTDOWN_TIMEOUT).map(String::as_str))
        .unwrap_or_else(|| panic!("the ConfigMap sets {SHUTDOWN_TIMEOUT} in seconds"));
    for (origin, document, spec) in kubernetes_pod_specs() {
        if kind(&document) == "Job" {
            continue;
        }
        let grace = spec
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_u64);
        let pause: u64 = invocation::kubernetes_containers(&spec)
            .iter()
            .filter_map(|container| {
                let exec = yaml::at(container, &["lifecycle", "preStop", "exec", "command"])
                    .and_then(yaml::words);
                match exec.as_deref() {
                    Some([sleep, duration]) if sleep == "sleep" => parse_duration_seconds(duration),
                    _ => yaml::at(container, &["lifecycle", "preStop", "sleep", "seconds"])
                        .and_then(Value::as_u64),
                }
            })
            .max()
            .unwrap_or(0);
        match grace {
            Some(grace) if grace > shutdown + pause => {}
            _ => problems.push(format!(
                "{origin}: terminationGracePeriodSeconds {grace:?} must exceed the preStop pause \
                 ({pause} s) plus {SHUTDOWN_TIMEOUT} ({shutdown} s)"
            )),
        }
    }

    let environment = systemd_environment();
    let shutdown = seconds(environment.get(SHUTDOWN_TIMEOUT).map(String::as_str))
        .unwrap_or_else(|| panic!("companion.env.example sets {SHUTDOWN_TIMEOUT} in seconds"));
    for (file, unit) in systemd_units() {
        let directives = systemd::directives(&unit);
        if systemd::value(&directives, "Service", "Type") == Some("oneshot") {
            continue;
        }
        let stop = seconds(systemd::value(&directives, "Service", "TimeoutStopSec"));
        if stop.is_none_or(|stop| stop <= shutdown) {
            problems.push(format!(
                "{file}: TimeoutStopSec {stop:?} must exceed {SHUTDOWN_TIMEOUT} ({shutdown} s)"
            ));
        }
    }

    for (name, service) in compose_companion_services() {
        if yaml::at(&service, &["command"])
            .and_then(yaml::words)
            .is_some_and(|command| command.first().is_some_and(|c| c == "migrate"))
        {
            continue;
        }
        let shutdown = yaml::at(&service, &["environment", SHUTDOWN_TIMEOUT])
            .and_then(yaml::scalar_text)
            .and_then(|text| parse_duration_seconds(&text));
        let grace = yaml::str_at(&service, &["stop_grace_period"]).and_then(parse_duration_seconds);
        match (shutdown, grace) {
            (Some(shutdown), Some(grace)) if grace > shutdown => {}
            _ => problems.push(format!(
                "compose service {name}: stop_grace_period {grace:?} must be set and exceed \
                 {SHUTDOWN_TIMEOUT} ({shutdown:?} s, which must be set too)"
            )),
        }
    }
    fail_on(&problems);
}

#[test]
fn kubernetes_pods_run_as_non_root_on_a_read_only_root_filesystem() {
    let mut problems = Vec::new();
    for (origin, _, spec) in kubernetes_pod_specs() {
        let pod_non_root = yaml::at(&spec, &["securityContext", "runAsNonRoot"])
            .and_then(Value::as_bool)
            == Some(true);
        for container in invocation::kubernetes_containers(&spec) {
            let name = yaml::str_at(container, &["name"]).unwrap_or("?");
            let flag =
                |key: &str| yaml::at(container, &["securityContext", key]).and_then(Value::as_bool);
            if !(pod_non_root || flag("runAsNonRoot") == Some(true)) {
                problems.push(format!(
                    "{origin}, container {name}: runAsNonRoot is not true"
                ));
            }
            if flag("readOnlyRootFilesystem") != Some(true) {
                problems.push(format!(
                    "{origin}, container {name}: readOnlyRootFilesystem is not true"
                ));
            }
            if flag("allowPrivilegeEscalation") != Some(false) {
                problems.push(format!(
                    "{origin}, container {name}: allowPrivilegeEscalation is not false"
                ));
            }
            let drops_all = yaml::at(container, &["securityContext", "capabilities", "drop"])
                .and_then(yaml::words)
                .is_some_and(|dropped| dropped.iter().any(|c| c == "ALL"));
            if !drops_all {
                problems.push(format!(
                    "{origin}, container {name}: capabilities do not drop ALL"
                ));
            }
        }
    }
    fail_on(&problems);
}

/// Every command reads its whole configuration at start, push key files included, so a file a
/// setting names must be mounted in every container that gets the setting (the migrate Job too).
#[test]
fn every_file_the_config_map_names_is_mounted_in_every_companion_container() {
    let (config_name, config) = kubernetes_config();
    let file_settings: Vec<(&String, &String)> = config
        .iter()
        .filter(|(key, value)| key.ends_with("_FILE") && value.starts_with('/'))
        .collect();
    let mut problems = Vec::new();
    for (origin, _, spec) in kubernetes_pod_specs() {
        for container in invocation::kubernetes_containers(&spec) {
            let name = yaml::str_at(container, &["name"]).unwrap_or("?");
            let uses_config = container
                .get("envFrom")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .any(|source| {
                    yaml::str_at(source, &["configMapRef", "name"]) == Some(config_name.as_str())
                });
            if !uses_config {
                problems.push(format!(
                    "{origin}, container {name}: does not take its settings from ConfigMap {config_name}"
                ));
                continue;
            }
            let mounts: Vec<&str> = container
                .get("volumeMounts")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .filter_map(|mount| yaml::str_at(mount, &["mountPath"]))
                .collect();
            for (key, path) in &file_settings {
                if !mounts
                    .iter()
                    .any(|mount| Path::new(path).starts_with(mount))
                {
                    problems.push(format!(
                        "{origin}, container {name}: nothing is mounted at {path} ({key})"
                    ));
                }
            }
        }
    }
    fail_on(&problems);
}

#[test]
fn secrets_are_referenced_never_written_in_the_deploy_files() {
    let mut problems = Vec::new();

    for (file, document) in kubernetes_documents() {
        if kind(&document) == "Secret" {
            problems.push(format!(
                "{file}: a Secret manifest; create Secrets outside the repository"
            ));
        }
    }
    let (_, config) = kubernetes_config();
    for secret in SECRET_SETTINGS {
        if config.contains_key(*secret) {
            problems.push(format!("the ConfigMap holds {secret}"));
        }
    }
    for (origin, _, spec) in kubernetes_pod_specs() {
        for container in invocation::kubernetes_containers(&spec) {
            let name = yaml::str_at(container, &["name"]).unwrap_or("?");
            let environment: BTreeMap<&str, &Value> = container
                .get("env")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .filter_map(|entry| Some((yaml::str_at(entry, &["name"])?, entry)))
                .collect();
            // Production refuses to start without the signing keys, whatever the command.
            for required in ["DATABASE_URL", "COMPANION_JWT_KEYS"] {
                if !environment.contains_key(required) {
                    problems.push(format!("{origin}, container {name}: no {required}"));
                }
            }
            for (key, entry) in &environment {
                if SECRET_SETTINGS.contains(key)
                    && yaml::at(entry, &["valueFrom", "secretKeyRef"]).is_none()
                {
                    problems.push(format!(
                        "{origin}, container {name}: {key} is not a secretKeyRef"
                    ));
                }
            }
        }
    }

    for (name, service) in compose_companion_services() {
        for secret in SECRET_SETTINGS {
            let value = yaml::at(&service, &["environment", secret]).and_then(yaml::scalar_text);
            if value.as_deref().is_some_and(|value| !value.contains("${")) {
                problems.push(format!(
                    "compose service {name}: {secret} is written in compose.yaml; take it from \
                     deploy/.env as ${{...}}"
                ));
            }
        }
    }

    for path in files::files_under(&files::deploy_dir()).expect("deploy/ can be listed") {
        if !path.to_string_lossy().ends_with(".env.example") {
            continue;
        }
        for (key, value) in settings::env_file(&read(&path)) {
            let secret = SECRET_SETTINGS.contains(&key.as_str()) || key.contains("PASSWORD");
            if secret && !value.is_empty() && !value.contains(PLACEHOLDER) {
                problems.push(format!(
                    "{}: {key} has a value; example files carry {PLACEHOLDER} or nothing",
                    files::display(&path)
                ));
            }
        }
    }
    fail_on(&problems);
}

#[test]
fn every_systemd_unit_runs_companion_as_its_own_user_with_the_env_file_and_hardening() {
    let mut problems = Vec::new();
    for (file, unit) in systemd_units() {
        let directives = systemd::directives(&unit);
        let service = |key: &str| systemd::value(&directives, "Service", key);
        let expected = [
            ("EnvironmentFile", "/etc/companion/companion.env"),
            ("User", "companion"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ReadWritePaths", "/var/lib/companion"),
        ];
        for (key, value) in expected {
            if service(key) != Some(value) {
                problems.push(format!(
                    "{file}: {key}={value} expected, found {:?}",
                    service(key)
                ));
            }
        }
        if service("Type") != Some("oneshot") && service("Restart") != Some("on-failure") {
            problems.push(format!(
                "{file}: a long-running unit needs Restart=on-failure"
            ));
        }
        if invocation::systemd(&unit, &file).is_empty() {
            problems.push(format!("{file}: runs no companion command"));
        }
    }
    let environment = systemd_environment();
    if environment.get("COMPANION_DATA_DIR").map(String::as_str) != Some("/var/lib/companion") {
        problems.push(
            "companion.env.example: COMPANION_DATA_DIR is not the units' ReadWritePaths".into(),
        );
    }
    fail_on(&problems);
}
