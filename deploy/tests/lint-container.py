#!/usr/bin/env python3
"""Static checks of deploy/container/Dockerfile and deploy/kubernetes/daemonset.yaml
(no Docker engine or cluster needed).

Dockerfile: every instruction is a known one (line continuations and comments handled);
the first instruction is FROM (or ARG); every `COPY --from=X` names an earlier stage (or
is an external image with a ':' or '/'); every other COPY/ADD source exists in the repository
(the build context is the repository root) and is not excluded by
Dockerfile.dockerignore; the final stage sets a non-root USER; ENTRYPOINT runs statewall;
the builder builds `-p statewall`; EXPOSE matches the metrics port.

DaemonSet: the manifest parses (all documents); the DaemonSet uses hostNetwork: true,
has an image with a tag, is not privileged, drops ALL capabilities and adds only known
ones; every configMap volume names a ConfigMap defined in the manifest and each `items`
key exists in it; the config mount path matches the --config argument; the container
ports include the metrics port, which equals [control].listen's port in the embedded
statewall.toml, the probes' port and the prometheus.io/port annotation.

Usage: lint-container.py [REPO_ROOT]     exit 0 ok, 1 problems, 77 skipped (no yaml)
"""
import fnmatch
import os
import re
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
DOCKERFILE = os.path.join(ROOT, "deploy/container/Dockerfile")
DOCKERIGNORE = os.path.join(ROOT, "deploy/container/Dockerfile.dockerignore")
DAEMONSET = os.path.join(ROOT, "deploy/kubernetes/daemonset.yaml")
METRICS_PORT = 9469
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
                "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
KNOWN_CAPS = {"NET_RAW", "NET_ADMIN", "IPC_LOCK", "BPF", "SYS_ADMIN", "SYS_NICE"}
problems = []


def fail(msg):
    problems.append(msg)
    print("FAIL: " + msg)


def dockerfile_instructions(text):
    """(line number, INSTRUCTION, args) with continuations joined and comments dropped."""
    out, buf, start = [], "", None
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if buf and s.startswith("#"):
            continue  # comment inside a continuation
        if start is None:
            start = n
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        word, _, args = buf.partition(" ")
        out.append((start, word, args.strip()))
        buf, start = "", None
    if buf:
        fail(f"Dockerfile:{start}: unterminated line continuation")
    return out


def ignore_patterns():
    if not os.path.exists(DOCKERIGNORE):
        return []
    return [p.strip().rstrip("/") for p in open(DOCKERIGNORE) if p.strip() and not p.startswith("#")]


def ignored(path, pats):
    path = path.rstrip("/")
    for p in pats:
        if fnmatch.fnmatch(path, p) or path.startswith(p + "/") or fnmatch.fnmatch(path, p.replace("**/", "")):
            return True
    return False


def lint_dockerfile():
    if not os.path.exists(DOCKERFILE):
        fail("deploy/container/Dockerfile missing")
        return
    ins = dockerfile_instructions(open(DOCKERFILE).read())
    if not ins:
        fail("Dockerfile is empty")
        return
    pats = ignore_patterns()
    stages, cur = [], None  # stage: {"name", "user", "entrypoint", "line"}
    first = next((i for i in ins if i[1].upper() != "ARG"), None)
    if first is None or first[1].upper() != "FROM":
        fail("Dockerfile: the first instruction (after ARGs) must be FROM")
    for line, word, args in ins:
        W = word.upper()
        if W not in INSTRUCTIONS:
            fail(f"Dockerfile:{line}: unknown instruction {word!r}")
            continue
        if word != W:
            fail(f"Dockerfile:{line}: instruction {word!r} should be upper case")
        if W == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$", args, re.I)
            if not m:
                fail(f"Dockerfile:{line}: cannot parse FROM {args!r}")
                continue
            image, name = m.group(1), m.group(2)
            if ":" not in image and "@" not in image and image not in {s["name"] for s in stages}:
                fail(f"Dockerfile:{line}: image {image} has no tag")
            cur = {"name": name, "user": None, "entrypoint": None, "cmd": None, "line": line, "expose": []}
            stages.append(cur)
            continue
        if cur is None:
            continue
        if W in ("COPY", "ADD"):
            toks = args.split()
            flags = [t for t in toks if t.startswith("--")]
            rest = [t for t in toks if not t.startswith("--")]
            if args.startswith("["):
                fail(f"Dockerfile:{line}: JSON-form {W} not checked")
                continue
            if len(rest) < 2:
                fail(f"Dockerfile:{line}: {W} needs a source and a destination")
                continue
            src_from = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            if src_from is not None:
                names = [s["name"] for s in stages[:-1] if s["name"]]
                if src_from not in names and not src_from.isdigit() and ":" not in src_from and "/" not in src_from:
                    fail(f"Dockerfile:{line}: COPY --from={src_from}: no earlier stage of that name (stages: {names})")
                continue
            for src in rest[:-1]:
                if re.match(r"https?://", src):
                    continue
                p = os.path.join(ROOT, src)
                if not (os.path.exists(p) or __import__("glob").glob(p)):
                    fail(f"Dockerfile:{line}: {W} source {src} does not exist in the repository")
                elif ignored(src.lstrip("./"), pats):
                    fail(f"Dockerfile:{line}: {W} source {src} is excluded by Dockerfile.dockerignore")
        elif W == "USER":
            cur["user"] = args.split(":")[0]
        elif W == "ENTRYPOINT":
            cur["entrypoint"] = args
        elif W == "CMD":
            cur["cmd"] = args
        elif W == "EXPOSE":
            cur["expose"] += [int(re.match(r"\d+", p).group(0)) for p in args.split()]
        elif W == "RUN" and "cargo build" in args:
            if "-p statewall" not in args or "--release" not in args:
                fail(f"Dockerfile:{line}: the builder must run cargo build --release -p statewall")
    if len(stages) < 2:
        fail("Dockerfile: expected a multi-stage build (builder + runtime)")
        return
    final = stages[-1]
    if not final["user"] or final["user"] in ("root", "0"):
        fail("Dockerfile: the final stage must set a non-root USER")
    if not final["entrypoint"] or "statewall" not in final["entrypoint"]:
        fail("Dockerfile: the final stage's ENTRYPOINT must run statewall")
    if not final["cmd"] or '"run"' not in final["cmd"]:
        fail("Dockerfile: the default CMD must be `run`")
    if METRICS_PORT not in final["expose"]:
        fail(f"Dockerfile: the final stage must EXPOSE {METRICS_PORT}")
    if not problems:
        print(f"ok: Dockerfile ({len(ins)} instructions, stages: {', '.join(s['name'] or '?' for s in stages)}, final USER {final['user']})")


def lint_daemonset():
    try:
        import yaml
    except ImportError:
        print("SKIP: python3-yaml not available (DaemonSet not checked)")
        return 77
    before = len(problems)
    docs = [d for d in yaml.safe_load_all(open(DAEMONSET)) if d]
    cms = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    dss = [d for d in docs if d.get("kind") == "DaemonSet"]
    if len(dss) != 1:
        fail(f"daemonset.yaml: expected one DaemonSet, found {len(dss)}")
        return 0
    ds = dss[0]
    spec = ds["spec"]["template"]["spec"]
    meta = ds["spec"]["template"]["metadata"]
    if ds["spec"]["selector"]["matchLabels"].items() - meta.get("labels", {}).items():
        fail("DaemonSet: selector does not match the pod template labels")
    if spec.get("hostNetwork") is not True:
        fail("DaemonSet: hostNetwork must be true (the NICs are the node's)")
    ctrs = spec.get("containers", [])
    c = next((c for c in ctrs if c["name"] == "statewall"), None)
    if c is None:
        fail("DaemonSet: no container named statewall")
        return 0
    img = c.get("image", "")
    if not re.match(r"^[\w./-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$", img) or img.endswith(":latest"):
        fail(f"DaemonSet: image {img!r} must have a pinned tag or digest")
    sc = c.get("securityContext", {})
    if sc.get("privileged"):
        fail("DaemonSet: the container must not be privileged")
    caps = sc.get("capabilities", {})
    if "ALL" not in caps.get("drop", []):
        fail("DaemonSet: capabilities must drop ALL")
    for cap in caps.get("add", []):
        if cap not in KNOWN_CAPS:
            fail(f"DaemonSet: capability {cap} is not one a backend needs ({sorted(KNOWN_CAPS)})")
    # ConfigMap references.
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    config_dir = None
    for v in vols.values():
        if "configMap" in v:
            name = v["configMap"]["name"]
            if name not in cms:
                fail(f"DaemonSet: volume {v['name']} references ConfigMap {name}, not in the manifest")
                continue
            for it in v["configMap"].get("items", []):
                if it["key"] not in cms[name].get("data", {}):
                    fail(f"DaemonSet: volume {v['name']} item key {it['key']!r} not in ConfigMap {name}")
    for m in c.get("volumeMounts", []):
        if m["name"] not in vols:
            fail(f"DaemonSet: volumeMount {m['name']} has no volume")
        elif "configMap" in vols[m["name"]]:
            config_dir = m["mountPath"].rstrip("/")
    args = c.get("args", [])
    if "--config" in args:
        cfg_path = args[args.index("--config") + 1]
        if config_dir is None or os.path.dirname(cfg_path) != config_dir:
            fail(f"DaemonSet: --config {cfg_path} is not under the ConfigMap mount {config_dir}")
        else:
            key = os.path.basename(cfg_path)
            cm_name = next(v["configMap"]["name"] for v in vols.values() if "configMap" in v)
            items = next(v["configMap"].get("items") for v in vols.values() if "configMap" in v)
            paths = [it["path"] for it in items] if items else list(cms[cm_name]["data"])
            if key not in paths:
                fail(f"DaemonSet: {cfg_path} is not projected from the ConfigMap")
            toml_text = cms[cm_name]["data"].get(key if not items else next(it["key"] for it in items if it["path"] == key), "")
            try:
                import tomllib
                cfg = tomllib.loads(toml_text)
                listen = cfg.get("control", {}).get("listen", "127.0.0.1:9469")
                port = int(listen.rsplit(":", 1)[1])
                if port != METRICS_PORT:
                    fail(f"ConfigMap statewall.toml: control.listen port {port} != {METRICS_PORT}")
                if listen.startswith("127.") or listen.startswith("[::1]"):
                    fail("ConfigMap statewall.toml: control.listen on loopback: probes and Prometheus cannot reach it")
                for f in ("file", "file6"):
                    r = cfg.get("rules", {}).get(f)
                    if r and os.path.basename(r) not in paths:
                        fail(f"ConfigMap statewall.toml: rules.{f} = {r} is not projected from the ConfigMap")
            except ImportError:
                print("SKIP: no tomllib (Python < 3.11): embedded statewall.toml not parsed")
            except Exception as e:  # noqa: BLE001
                fail(f"ConfigMap statewall.toml does not parse: {e}")
    else:
        fail("DaemonSet: args lack --config")
    # Ports.
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    if METRICS_PORT not in ports.values():
        fail(f"DaemonSet: no containerPort {METRICS_PORT} (metrics)")
    for probe in ("livenessProbe", "readinessProbe"):
        pr = c.get(probe, {}).get("httpGet")
        if not pr:
            fail(f"DaemonSet: {probe} must be an httpGet on the metrics port")
            continue
        p = pr["port"]
        p = ports.get(p, p) if isinstance(p, str) else p
        if p != METRICS_PORT:
            fail(f"DaemonSet: {probe} port {pr['port']} is not the metrics port {METRICS_PORT}")
    ann = meta.get("annotations", {})
    if ann.get("prometheus.io/scrape") != "true" or str(ann.get("prometheus.io/port")) != str(METRICS_PORT):
        fail("DaemonSet: prometheus.io/scrape/port annotations missing or not the metrics port")
    if len(problems) == before:
        print(f"ok: daemonset.yaml (hostNetwork, image {img}, caps {caps.get('add')}, ConfigMap keys, port {METRICS_PORT})")
    return 0


def main():
    lint_dockerfile()
    skipped = lint_daemonset() == 77
    if problems:
        return 1
    return 77 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
