"""Validates every FHIR resource the server emitted in the Rust API tests.

Each file in the folder given as the first argument (written by the tests when
COMPANION_FHIR_DUMP_DIR is set) holds one response body: a resource, a Bundle of
resources or an OperationOutcome. Each is parsed with the `fhir.resources` R4B models
(R4B shares R4's definitions of every resource the server emits), which reject unknown
elements, wrong types, missing required elements and bad code values. Bundles are
validated whole and each entry's resource again on its own.

Exits 1 naming every invalid body, and also when there is nothing to validate (a run that
validates nothing must not pass).
"""

import json
import pathlib
import sys
from collections import Counter

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

# What the server emits. A body of any other type is an error too.
EXPECTED = {
    "CapabilityStatement",
    "Questionnaire",
    "QuestionnaireResponse",
    "Observation",
    "Patient",
    "Organization",
    "Flag",
    "Task",
    "Bundle",
    "OperationOutcome",
}


# The models check structure, types and cardinality but not codes from required value sets;
# these are the R4 required bindings of the coded elements the server fills in.
STATUS = {
    "CapabilityStatement": {"draft", "active", "retired", "unknown"},
    "Questionnaire": {"draft", "active", "retired", "unknown"},
    "QuestionnaireResponse": {"in-progress", "completed", "amended", "entered-in-error", "stopped"},
    "Observation": {"registered", "preliminary", "final", "amended", "corrected", "cancelled",
                    "entered-in-error", "unknown"},
    "Flag": {"active", "inactive", "entered-in-error"},
    "Task": {"draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
             "in-progress", "on-hold", "failed", "completed", "entered-in-error"},
}
TASK_INTENT = {"unknown", "proposal", "plan", "order", "original-order", "reflex-order",
               "filler-order", "instance-order", "option"}
TASK_PRIORITY = {"routine", "urgent", "asap", "stat"}
ITEM_TYPE = {"group", "display", "boolean", "decimal", "integer", "date", "dateTime", "time",
             "string", "text", "url", "choice", "open-choice", "attachment", "reference",
             "quantity"}
ISSUE_SEVERITY = {"fatal", "error", "warning", "information"}
ISSUE_TYPE = {"invalid", "structure", "required", "value", "invariant", "security", "login",
              "unknown", "expired", "forbidden", "suppressed", "processing", "not-supported",
              "duplicate", "multiple-matches", "not-found", "deleted", "too-long",
              "code-invalid", "extension", "too-costly", "business-rule", "conflict",
              "transient", "lock-error", "no-store", "exception", "timeout", "incomplete",
              "throttled", "informational"}


def bindings(resource: dict) -> list:
    kind = resource["resourceType"]
    problems = []

    def check(value, allowed, what):
        if value is not None and value not in allowed:
            problems.append(f"{kind}.{what} {value!r} is not in its required value set")

    check(resource.get("status"), STATUS.get(kind, {resource.get("status")}), "status")
    if kind == "Task":
        check(resource.get("intent"), TASK_INTENT, "intent")
        check(resource.get("priority"), TASK_PRIORITY, "priority")
    if kind == "Questionnaire":
        for item in resource.get("item", []):
            check(item.get("type"), ITEM_TYPE, "item.type")
    if kind == "OperationOutcome":
        for issue in resource.get("issue", []):
            check(issue.get("severity"), ISSUE_SEVERITY, "issue.severity")
            check(issue.get("code"), ISSUE_TYPE, "issue.code")
    if kind == "Bundle":
        check(resource.get("type"), {"searchset"}, "type")
    return problems


def validate(resource: dict, where: str, counts: Counter, errors: list) -> None:
    kind = resource.get("resourceType")
    if kind not in EXPECTED:
        errors.append(f"{where}: unexpected resourceType {kind!r}")
        return
    try:
        get_fhir_model_class(kind).model_validate(resource)
    except ValidationError as error:
        errors.append(f"{where}: {kind} is not valid FHIR R4:\n{error}")
        return
    problems = bindings(resource)
    if problems:
        errors.extend(f"{where}: {problem}" for problem in problems)
        return
    counts[kind] += 1
    if kind == "Bundle":
        for i, entry in enumerate(resource.get("entry", [])):
            validate(entry["resource"], f"{where} entry {i}", counts, errors)


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: validate.py DUMP_DIR", file=sys.stderr)
        return 2
    folder = pathlib.Path(sys.argv[1])
    files = sorted(folder.glob("*.json"))
    counts: Counter = Counter()
    errors: list = []
    for path in files:
        try:
            body = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            errors.append(f"{path.name}: not JSON: {error}")
            continue
        validate(body, path.name, counts, errors)
    for error in errors:
        print(error, file=sys.stderr)
    summary = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    print(f"validated {sum(counts.values())} resources from {len(files)} responses: {summary}")
    if not files:
        print(f"no FHIR responses in {folder}: nothing was validated", file=sys.stderr)
        return 1
    print(f"fhir-validate: {sum(counts.values())} passed, {len(errors)} failed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
