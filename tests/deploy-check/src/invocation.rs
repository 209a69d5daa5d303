//! The `companion` command lines that deployment files run: compose services, Kubernetes
//! containers and systemd `Exec*=` lines.

use std::path::Path;

use crate::systemd;
use crate::yaml::{self, Value};

/// A program run with arguments, and where that was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// The file and the place in it, for messages.
    pub origin: String,
    /// The program as written (a path or a bare name).
    pub program: String,
    /// The arguments after the program.
    pub args: Vec<String>,
}

impl Invocation {
    /// Whether the program is the `companion` binary (by file name).
    pub fn runs_companion(&self) -> bool {
        Path::new(&self.program)
            .file_name()
            .is_some_and(|name| name == "companion")
    }

    /// The arguments joined by spaces (`serve --no-workers`).
    pub fn command_line(&self) -> String {
        self.args.join(" ")
    }
}

/// Whether an image reference names the `companion` image, whatever its registry, tag or
/// digest (`companion:local`, `registry.example.org/companion:1.2`).
pub fn is_companion_image(image: &str) -> bool {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_part = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last_part.split(':').next() == Some("companion")
}

/// The image's entrypoint, which compose services and Kubernetes containers that set no command
/// of their own run (the Dockerfile check holds the image to it).
const IMAGE_ENTRYPOINT: &str = "companion";

/// The commands of the compose services that run the `companion` image. A service that sets no
/// `command` runs the image's default and is left to the Dockerfile check.
pub fn compose(document: &Value, file: &str) -> Vec<Invocation> {
    let Some(services) = yaml::at(document, &["services"]).and_then(Value::as_mapping) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (name, service) in services {
        let name = name.as_str().unwrap_or("?");
        if !yaml::str_at(service, &["image"]).is_some_and(is_companion_image) {
            continue;
        }
        let entrypoint = service.get("entrypoint").and_then(yaml::words);
        let command = service.get("command").and_then(yaml::words);
        if entrypoint.is_none() && command.is_none() {
            continue;
        }
        let (program, mut args) = match entrypoint {
            Some(mut words) if !words.is_empty() => {
                let program = words.remove(0);
                (program, words)
            }
            _ => (IMAGE_ENTRYPOINT.to_owned(), Vec::new()),
        };
        args.extend(command.unwrap_or_default());
        found.push(Invocation {
            origin: format!("{file}: service {name}"),
            program,
            args,
        });
    }
    found
}

/// The containers (and init containers) of a Kubernetes manifest that run the `companion` image,
/// with the document's kind and name.
pub fn kubernetes_containers(document: &Value) -> Vec<&Value> {
    yaml::mappings(document)
        .into_iter()
        .flat_map(|mapping| {
            ["containers", "initContainers"]
                .into_iter()
                .filter_map(|key| mapping.get(key).and_then(Value::as_sequence))
                .flatten()
        })
        .filter(|container| yaml::str_at(container, &["image"]).is_some_and(is_companion_image))
        .collect()
}

/// `Kind name` of a Kubernetes document, for messages.
pub fn kubernetes_name(document: &Value) -> String {
    format!(
        "{} {}",
        yaml::str_at(document, &["kind"]).unwrap_or("?"),
        yaml::str_at(document, &["metadata", "name"]).unwrap_or("?")
    )
}

/// The command lines of the `companion` containers of a Kubernetes manifest. `command` replaces
/// the image's entrypoint and `args` its default command, as in Kubernetes.
pub fn kubernetes(document: &Value, file: &str) -> Vec<Invocation> {
    kubernetes_containers(document)
        .into_iter()
        .map(|container| {
            let args = container
                .get("args")
                .and_then(yaml::words)
                .unwrap_or_default();
            let (program, args) = match container.get("command").and_then(yaml::words) {
                Some(mut command) if !command.is_empty() => {
                    let program = command.remove(0);
                    command.extend(args);
                    (program, command)
                }
                _ => (IMAGE_ENTRYPOINT.to_owned(), args),
            };
            Invocation {
                origin: format!(
                    "{file}: {}, container {}",
                    kubernetes_name(document),
                    yaml::str_at(container, &["name"]).unwrap_or("?")
                ),
                program,
                args,
            }
        })
        .collect()
}

/// The `Exec*=` lines of a systemd unit that run a program called `companion`.
pub fn systemd(unit: &str, file: &str) -> Vec<Invocation> {
    systemd::directives(unit)
        .into_iter()
        .filter(|d| d.key.starts_with("Exec"))
        .filter_map(|d| {
            let mut words = systemd::command_words(&d.value);
            if words.is_empty() {
                return None;
            }
            let program = words.remove(0);
            let invocation = Invocation {
                origin: format!("{file}: {}", d.key),
                program,
                args: words,
            };
            invocation.runs_companion().then_some(invocation)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_are_recognised_whatever_their_registry_and_tag() {
        assert!(is_companion_image("companion"));
        assert!(is_companion_image("companion:local"));
        assert!(is_companion_image(
            "registry.example.org:5000/team/companion:1.2@sha256:ab"
        ));
        assert!(!is_companion_image("postgres:16"));
        assert!(!is_companion_image("companion-proxy:1"));
    }

    #[test]
    fn kubernetes_command_replaces_the_entrypoint_and_args_follow_it() {
        let manifest = r"
kind: Job
metadata: {name: j}
spec:
  template:
    spec:
      containers:
        - {name: a, image: companion, args: [migrate]}
        - name: b
          image: x/companion:2
          command: [/usr/local/bin/companion, serve]
          args: [--no-workers]
        - {name: c, image: busybox, args: [sh]}
";
        let doc = &yaml::documents(manifest).unwrap()[0];
        let found = kubernetes(doc, "f");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].command_line(), "migrate");
        assert_eq!(found[0].origin, "f: Job j, container a");
        assert_eq!(found[1].command_line(), "serve --no-workers");
        assert!(found.iter().all(Invocation::runs_companion));
    }

    #[test]
    fn compose_services_of_other_images_or_without_a_command_are_skipped() {
        let doc = &yaml::documents(
            "services:\n  db: {image: postgres, command: [postgres]}\n  web: {image: companion:local}\n\
             \x20 work: {image: companion:local, command: work --once}\n",
        )
        .unwrap()[0];
        let found = compose(doc, "c");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].args, vec!["work", "--once"]);
    }

    #[test]
    fn systemd_exec_lines_running_companion_are_found_and_others_ignored() {
        let unit = "[Service]\nExecStartPre=/bin/true\nExecStart=-/usr/local/bin/companion work\n";
        let found = systemd(unit, "u");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].command_line(), "work");
        assert_eq!(found[0].origin, "u: ExecStart");
    }
}
