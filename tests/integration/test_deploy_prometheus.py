#!/usr/bin/env python3
"""deploy/ against Debian's real Prometheus.

usage: test_deploy_prometheus.py SOURCE_DIR BIN_DIR [DROP_TOPICS]

1. promtool check config (deploy/prometheus/prometheus.yml), promtool check rules (every
   rules file), promtool test rules (every deploy/prometheus/tests/*.test.yml).
2. A real election in server mode: tally-gen registers a seeded registry into a private
   PostgreSQL schema and topic prefix, tallyd --http 127.0.0.1:0 counts it, tally-sim
   produces the votes (with every kind of fault) and writes the ground truth.
3. /usr/bin/prometheus (private TSDB in a temp dir, a free loopback port) scrapes tallyd
   every 1 s and evaluates deploy/'s rule files every 1 s.
4. Once tallyd has counted everything and Prometheus has scraped that twice, through
   /api/v1/query:
   - every PromQL expression of the Grafana dashboard (deploy/grafana/dashboards/*.json,
     "$instance" replaced by ".+") returns a non-empty result;
   - every recording rule's expression, and the series it records, return a non-empty result;
   - alert expressions are legitimately empty while healthy, so each one is cut into its
     parts (split at top-level "and"/"or"/"unless", a trailing top-level comparison with a
     number removed) and every part must return data; /api/v1/rules must show every rule
     with health "ok" and no alert "firing";
   - tally_votes_accepted_total, tally_candidate_votes_total per candidate_id and
     tally_votes_rejected_total per reason equal tallyd's /api/results, and accepted equals
     tally-sim's ground truth.
Services: TALLY_KAFKA_BROKERS and TALLY_PG_DSN, else SOURCE_DIR/var/services.env.
5. The logs of tallyd and prometheus hold no sanitizer report (a tallyd built with
   AddressSanitizer/UndefinedBehaviorSanitizer writes its reports there, not to this test).
Cleanup: prometheus and tallyd stopped, the schema dropped, the temp dir removed, and the
topics under the run's prefix deleted by DROP_TOPICS (tests/integration/dashboard/
drop_topics.c) when given.
"""

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import yaml

SEED = 7
VOTERS = 6000
CANDIDATES = 5
REGIONS = 12
PARTITIONS = 3

failures = []

# What a sanitizer report starts with, in the log of a process built with one.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")


def log(msg):
    print(msg, flush=True)


def check(cond, what):
    if not cond:
        failures.append(what)
        log("FAIL: " + what)
    return cond


def die(msg):
    log("FATAL: " + msg)
    sys.exit(1)


def service_env(src, name):
    v = os.environ.get(name)
    if v:
        return v
    path = os.path.join(src, "var", "services.env")
    try:
        with open(path) as f:
            for line in f:
                k, sep, val = line.strip().partition("=")
                if sep and k == name:
                    return val.strip().strip("'\"")
    except OSError:
        pass
    die(f"{name} is not set and {path} does not name it: run scripts/services up")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def promtool(*args):
    r = subprocess.run(["promtool", *args], capture_output=True, text=True)
    out = (r.stdout + r.stderr).strip()
    check(r.returncode == 0, f"promtool {' '.join(args)} failed:\n{out}")
    log(f"promtool {' '.join(args)}: exit {r.returncode}")


# ---- PromQL helpers ------------------------------------------------------------------------

def split_top(expr):
    """Parts of expr at top-level set operators, each without a trailing comparison."""
    parts, depth, start, i = [], 0, 0, 0
    s = expr
    in_str = None
    while i < len(s):
        c = s[i]
        if in_str:
            if c == "\\":
                i += 2
                continue
            if c == in_str:
                in_str = None
        elif c in "\"'`":
            in_str = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            m = re.match(r"\b(and|or|unless)\b(\s+(on|ignoring)\s*\([^)]*\))?", s[i:])
            if m and (i == 0 or not (s[i - 1].isalnum() or s[i - 1] == "_")):
                parts.append(s[start:i])
                i += m.end()
                start = i
                continue
        i += 1
    parts.append(s[start:])
    out = []
    for p in parts:
        p = re.sub(r"(==|!=|>=|<=|>|<)\s*(bool\s+)?[-+0-9.eE]+\s*$", "", p.strip()).strip()
        out.append(p)
    return out


class Prom:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def query(self, expr):
        url = self.base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            _, body = http_get(url)
        except urllib.error.HTTPError as e:
            return {"status": "error", "error": e.read().decode()}
        return json.loads(body)

    def result(self, expr):
        r = self.query(expr)
        if r.get("status") != "success":
            return None, r.get("error", str(r))
        return r["data"]["result"], None

    def scalar_map(self, expr, label):
        res, err = self.result(expr)
        if res is None:
            return {}
        return {s["metric"].get(label, ""): float(s["value"][1]) for s in res}


def expect_data(prom, expr, what):
    res, err = prom.result(expr)
    if not check(res is not None, f"{what}: query error: {err}\n  {expr}"):
        return
    check(len(res) > 0, f"{what}: empty result\n  {expr}")


def dashboard_exprs(path):
    d = json.load(open(path))
    exprs = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    exprs.append((f"panel {p.get('title')!r} {t.get('refId')}", t["expr"]))
            walk(p.get("panels", []))
    walk(d.get("panels", []))
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.match(r"label_values\((.*),\s*(\w+)\)$", q or "")
        if m:
            exprs.append((f"variable {v['name']}", f"count by ({m.group(2)}) ({m.group(1)})"))
    return [(w, e.replace("$instance", ".+")) for w, e in exprs]


# ---- the run -------------------------------------------------------------------------------

def main():
    if len(sys.argv) not in (3, 4):
        die(__doc__.split("\n")[2])
    src, bindir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    drop_topics = os.path.abspath(sys.argv[3]) if len(sys.argv) == 4 else None
    deploy = os.path.join(src, "deploy")
    prom_dir = os.path.join(deploy, "prometheus")
    rule_files = sorted(glob.glob(os.path.join(prom_dir, "rules", "*.yml")))
    dashboards = sorted(glob.glob(os.path.join(deploy, "grafana", "dashboards", "*.json")))
    for exe in ("promtool", "prometheus"):
        if shutil.which(exe) is None:
            die(f"{exe} not found: run scripts/setup (Debian's prometheus package)")

    # 1. promtool.
    promtool("check", "config", os.path.join(prom_dir, "prometheus.yml"))
    promtool("check", "rules", *rule_files)
    for t in sorted(glob.glob(os.path.join(prom_dir, "tests", "*.test.yml"))):
        promtool("test", "rules", t)
    for path in glob.glob(os.path.join(deploy, "grafana", "provisioning", "*", "*.yml")):
        check(isinstance(yaml.safe_load(open(path)), dict), f"{path}: not a YAML mapping")

    brokers = service_env(src, "TALLY_KAFKA_BROKERS")
    dsn = service_env(src, "TALLY_PG_DSN")
    env = dict(os.environ, TALLY_KAFKA_BROKERS=brokers, TALLY_PG_DSN=dsn)
    tag = f"deploy{os.getpid()}_{int(time.time())}"
    prefix, schema = tag + "_", tag
    pgopt = f"--pg.options=-csearch_path={schema}"
    tmp = tempfile.mkdtemp(prefix="tally-deploy-")
    procs = []
    schema_made = False

    def run(cmd, **kw):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, **kw)
        if r.returncode != 0:
            die(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    try:
        run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn, "-c", f"CREATE SCHEMA {schema}"])
        schema_made = True
        run([os.path.join(bindir, "tally-gen"), "--seed", str(SEED), "--voters", str(VOTERS),
             "--candidates", str(CANDIDATES), "--regions", str(REGIONS), "--partitions",
             str(PARTITIONS), "--topic-prefix", prefix, pgopt, "--quiet"])

        tallyd_log = os.path.join(tmp, "tallyd.log")
        tallyd = subprocess.Popen([os.path.join(bindir, "tallyd"), "--topic-prefix", prefix, pgopt,
                                   "--group-id", prefix, "--http", "127.0.0.1:0"],
                                  env=env, stdout=subprocess.DEVNULL,
                                  stderr=open(tallyd_log, "w"))
        procs.append(("tallyd", tallyd, tallyd_log))
        tport = None
        for _ in range(300):
            m = re.search(r"\(port (\d+)", open(tallyd_log).read())
            if m:
                tport = int(m.group(1))
                break
            if tallyd.poll() is not None:
                die("tallyd exited:\n" + open(tallyd_log).read())
            time.sleep(0.1)
        if tport is None:
            die("tallyd did not log its http port:\n" + open(tallyd_log).read())
        tally = f"http://127.0.0.1:{tport}"
        for _ in range(600):
            try:
                if http_get(tally + "/readyz")[0] == 200:
                    break
            except Exception:
                pass
            time.sleep(0.1)
        else:
            die("tallyd never ready:\n" + open(tallyd_log).read())
        log(f"tallyd ready on port {tport}")

        # 3. Prometheus scraping tallyd every second, with deploy/'s rules.
        pport = free_port()
        conf = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": rule_files,
            "scrape_configs": [{"job_name": "tallyd",
                                "static_configs": [{"targets": [f"127.0.0.1:{tport}"]}]}],
        }
        conf_path = os.path.join(tmp, "prometheus.yml")
        with open(conf_path, "w") as f:
            yaml.safe_dump(conf, f)
        prom_log = os.path.join(tmp, "prometheus.log")
        prom_proc = subprocess.Popen(["prometheus", "--config.file", conf_path,
                                      "--storage.tsdb.path", os.path.join(tmp, "tsdb"),
                                      "--web.listen-address", f"127.0.0.1:{pport}",
                                      "--log.level", "warn"],
                                     stdout=subprocess.DEVNULL, stderr=open(prom_log, "w"))
        procs.append(("prometheus", prom_proc, prom_log))
        prom = Prom(pport)
        for _ in range(300):
            try:
                if http_get(prom.base + "/-/ready")[0] == 200:
                    break
            except Exception:
                pass
            if prom_proc.poll() is not None:
                die("prometheus exited:\n" + open(prom_log).read())
            time.sleep(0.1)
        else:
            die("prometheus never ready:\n" + open(prom_log).read())
        # Prometheus starts scraping a few seconds after it is ready (its target
        # discovery updates every 5 s): the votes must come after its first scrape.
        for _ in range(300):
            if prom.scalar_map('up{job="tallyd"}', "job").get("tallyd") == 1.0:
                break
            time.sleep(0.1)
        else:
            die("prometheus never scraped tallyd:\n" + open(prom_log).read())
        log(f"prometheus ready on port {pport}, scraping tallyd")

        # 2. The votes, paced so that Prometheus sees them arrive (the rates are not all 0).
        truth_path = os.path.join(tmp, "truth.json")
        run([os.path.join(bindir, "tally-sim"), "--topic-prefix", prefix, pgopt, "--seed",
             str(SEED), "--partitions", str(PARTITIONS), "--rate", "1000", "--truth",
             truth_path, "--quiet"])
        truth = json.load(open(truth_path))
        want_accepted = int(truth["accepted"])
        log(f"tally-sim: truth accepted {want_accepted}")

        # 4. Everything counted, then seen by two scrapes.
        deadline = time.time() + 90
        results = None
        while time.time() < deadline:
            results = json.loads(http_get(tally + "/api/results")[1])
            if results["accepted"] == want_accepted:
                break
            time.sleep(0.2)
        check(results is not None and results["accepted"] == want_accepted,
              f"tallyd accepted {results and results['accepted']}, truth {want_accepted}")
        while time.time() < deadline:
            got = prom.scalar_map("tally_votes_accepted_total", "job")
            if got.get("tallyd") == float(results["accepted"]):
                break
            time.sleep(0.2)
        time.sleep(2.5)   # two more scrapes and rule evaluations
        results = json.loads(http_get(tally + "/api/results")[1])

        # The totals Prometheus holds equal tallyd's own.
        got = prom.scalar_map("tally_votes_accepted_total", "job").get("tallyd")
        check(got == float(results["accepted"]) == float(want_accepted),
              f"accepted: prometheus {got}, /api/results {results['accepted']}, truth {want_accepted}")
        per_cand = prom.scalar_map("tally_candidate_votes_total", "candidate_id")
        want_cand = {c["candidate_id"]: float(c["total_votes"]) for c in results["candidates"]}
        check(per_cand == want_cand and len(want_cand) == CANDIDATES,
              f"per candidate: prometheus {per_cand}, /api/results {want_cand}")
        per_reason = prom.scalar_map("tally_votes_rejected_total", "reason")
        want_reason = {k: float(v) for k, v in results["rejected"].items()}
        check(per_reason == want_reason, f"per reason: prometheus {per_reason}, /api/results {want_reason}")
        check(sum(want_reason.values()) > 0, "no vote was rejected: the rejection panels are untested")
        log(f"totals: accepted {got:.0f}, {len(per_cand)} candidates, {len(per_reason)} reasons equal /api/results")

        # The polls are open (so TallyNoVotesWhilePollsOpen's emptiness below means something).
        status = prom.scalar_map('tally_election_status == 1', "status")
        check(list(status) == ["open"], f"election status {status}, want open")

        # Every dashboard expression returns data.
        n = 0
        for path in dashboards:
            for what, expr in dashboard_exprs(path):
                expect_data(prom, expr, f"{os.path.basename(path)} {what}")
                n += 1
        check(n > 0, "no dashboard expression found")
        log(f"dashboard: {n} expressions queried")

        # Every rule: recording expressions and their series; alert expressions in parts.
        nrec = nalert = nparts = 0
        alerts = []
        for path in rule_files:
            for g in yaml.safe_load(open(path))["groups"]:
                for r in g["rules"]:
                    if "record" in r:
                        expect_data(prom, r["expr"], f"record {r['record']}")
                        expect_data(prom, r["record"], f"recorded series {r['record']}")
                        nrec += 1
                    else:
                        alerts.append(r["alert"])
                        # Healthy and votes counted within its window: no alert has a
                        # result (TallyNoVotesWhilePollsOpen's polls are open here).
                        res, err = prom.result(r["expr"])
                        check(res == [], f"alert {r['alert']}: expression gives {res if res is not None else err}")
                        for part in split_top(r["expr"]):
                            expect_data(prom, part, f"alert {r['alert']} part")
                            nparts += 1
                        nalert += 1
        log(f"rules: {nrec} recording rules and their series, {nalert} alerts in {nparts} parts queried")

        _, body = http_get(prom.base + "/api/v1/rules")
        seen = {}
        for g in json.loads(body)["data"]["groups"]:
            for r in g["rules"]:
                check(r.get("health") == "ok", f"rule {r['name']}: health {r.get('health')} {r.get('lastError', '')}")
                if r["type"] == "alerting":
                    seen[r["name"]] = r["state"]
                    check(r["state"] != "firing", f"alert {r['name']} is firing on a healthy run")
        check(sorted(seen) == sorted(alerts), f"alerts loaded {sorted(seen)}, in the files {sorted(alerts)}")
        log(f"alerts: {', '.join(f'{k}={v}' for k, v in sorted(seen.items()))}")
    finally:
        for name, p, plog in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            text = open(plog, errors="replace").read()
            for marker in SANITIZER_MARKERS:
                check(marker not in text, f"{name}: a sanitizer report ({marker}) in its log")
            if failures:
                log(f"---- {name} log ----\n" + text[-4000:])
        if drop_topics is not None:
            r = subprocess.run([drop_topics, prefix], env=env, capture_output=True, text=True)
            check(r.returncode == 0, f"drop_topics {prefix}: exit {r.returncode} {r.stderr}")
        if schema_made:
            subprocess.run(["psql", "-X", "-q", dsn, "-c", f"DROP SCHEMA {schema} CASCADE"],
                           env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    if failures:
        log(f"{len(failures)} check(s) failed")
        sys.exit(1)
    log("all checks passed")


if __name__ == "__main__":
    main()
