"""The contracts inside the repository: docs/openapi.yaml and docs/schemas.

- every route the daemon registers (the route tables in daemon/*.c) is in
  the document, with its method, and the document names no route the
  daemon lacks;
- GET /v1/openapi.json (no token, admin listener only) serves the document
  itself: docs/openapi.yaml with the schema files it refers to embedded;
- the schemas are valid JSON Schema 2020-12, state the limits the C code
  enforces (read from its headers, so neither can move alone), and the
  profile and recipient schemas agree;
- every example in the docs (docs/api.md's JSON blocks and request bodies,
  README's recipient and job, config/demo) matches its schema;
- the schema and the daemon agree on jobs: each case of a table of valid
  and invalid jobs (with every dead-letter case of test_malformed_jobs.py)
  is accepted by both or refused by both (heraldctl enqueue validates as
  the daemon does), except the rules a schema cannot state (size in bytes);
- the routes the API tests do not reach (/healthz, /metrics,
  /v1/openapi.json, the link pages, the webhooks' refusals) answer through
  a Prism proxy with zero violations; the proxy is no pass-through (a
  refused body is caught), and every schema of the document compiles the
  way Prism compiles it (one it cannot compile is silently not checked)."""

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import jsonschema
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import prism  # noqa: E402
from harness import job, person  # noqa: E402
from test_malformed_jobs import bad_jobs  # noqa: E402

sys.path.insert(0, os.path.join(harness.ROOT, "cmake"))
import openapi_json  # noqa: E402

DOCS = os.path.join(harness.ROOT, "docs")
SCHEMAS = os.path.join(DOCS, "schemas")
DAEMON = os.path.join(harness.ROOT, "daemon")


def load_schema(name):
    with open(os.path.join(SCHEMAS, name)) as f:
        return json.load(f)


def validator(schema):
    return jsonschema.Draft202012Validator(schema)


def errors(schema, doc):
    return ["%s: %s" % ("/".join(map(str, e.absolute_path)), e.message) for e in validator(schema).iter_errors(doc)]


def bundled():
    return openapi_json.bundle(os.path.join(DOCS, "openapi.yaml"))


def component_validator(doc, schema):
    """A validator for schema (a part of the bundled document doc): its
    "#/components/..." references resolve in doc."""
    resolver = jsonschema.RefResolver.from_schema(doc)
    return jsonschema.Draft202012Validator(schema, resolver=resolver)


def c_define(header, name):
    """The integer a C header #defines name as (simple expressions such as (256 * 1024))."""
    with open(os.path.join(DAEMON, header)) as f:
        m = re.search(r"#define\s+%s\s+(.+?)(?:\s*/\*|$)" % name, f.read(), re.M)
    assert m, "%s not in %s" % (name, header)
    return int(eval(m.group(1).replace("u", ""), {}))


def registered_routes():
    """{(METHOD, pattern)} of every route the daemon registers."""
    routes = set()
    for name in os.listdir(DAEMON):
        if not name.endswith(".c"):
            continue
        with open(os.path.join(DAEMON, name)) as f:
            text = f.read()
        for m in re.finditer(r'http_route\(\s*\w+,\s*"([A-Z]+)",\s*"([^"]+)"', text):
            routes.add((m.group(1), m.group(2)))
        # route tables: {"PUT", "/v1/recipients/{id}", handler},
        for m in re.finditer(r'\{\s*"([A-Z]+)",\s*"(/[^"]*)",\s*\w+\s*\}', text):
            routes.add((m.group(1), m.group(2)))
    return routes


def document_routes(doc):
    out = set()
    for path, item in doc["paths"].items():
        for method in ("get", "put", "post", "patch", "delete"):
            if method in item:
                out.add((method.upper(), path))
    return out


def deref(doc, node):
    """node, or what its "#/..." $ref points to in doc."""
    while isinstance(node, dict) and "$ref" in node:
        target = doc
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def md_examples(path):
    """[(heading, kind, JSON)] of a markdown file: kind "json" for a ```json
    block, "body" for a curl -d '...' request body."""
    out = []
    heading = ""
    with open(path) as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("```"):
            lang = line[3:].strip()
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            block = "\n".join(lines[i + 1:j])
            if lang == "json":
                out.append((heading, "json", json.loads(block)))
            elif lang == "sh":
                m = re.search(r"-d '(.*?)'", block, re.S)
                if m:
                    out.append((heading, "body", json.loads(m.group(1))))
            i = j
        i += 1
    return out


class Contracts(harness.HeraldTestCase):

    def test_every_route_is_in_the_document(self):
        doc = bundled()
        code = registered_routes()
        self.assertGreaterEqual(len(code), 18, "the route tables were not found: %r" % sorted(code))
        self.assertEqual(sorted(code - document_routes(doc)), [], "routes the daemon serves, missing from openapi.yaml")
        self.assertEqual(sorted(document_routes(doc) - code), [], "routes in openapi.yaml the daemon does not serve")
        # Each operation says its listener, and its errors are the one error shape.
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if not isinstance(op, dict) or "responses" not in op:
                    continue
                with self.subTest(route="%s %s" % (method, path)):
                    self.assertEqual(len({"admin", "public"} & set(op["tags"])), 1, "one listener tag")
                    public = "public" in op["tags"]
                    self.assertEqual(public, path.startswith(("/u/", "/p/", "/v1/webhooks/")))
                    security = op.get("security", doc["security"])
                    if path.startswith("/v1/") and not public and path != "/v1/openapi.json":
                        self.assertEqual(security, [{"bearer": []}])
                        self.assertIn("401", op["responses"])
                    for status, resp in op["responses"].items():
                        resp = deref(doc, resp)
                        self.assertIn("Cache-Control", resp.get("headers", {}), "%s: Cache-Control" % status)

    def test_openapi_json_is_the_document(self):
        e = self.env()
        e.start_herald()
        want = bundled()
        with urllib.request.urlopen("http://127.0.0.1:%d/v1/openapi.json" % e.admin_port, timeout=10) as resp:
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.headers["Content-Type"], "application/json")
            self.assertEqual(resp.headers["Cache-Control"], "no-store")
            got = json.loads(resp.read())
        self.assertEqual(got, want, "GET /v1/openapi.json differs from docs/openapi.yaml")
        self.assertEqual(got["openapi"], "3.1.0")
        # Only on the admin listener.
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen("http://127.0.0.1:%d/v1/openapi.json" % e.public_port, timeout=10)
        self.assertEqual(cm.exception.code, 404)
        # Every reference of the served document resolves inside it.
        refs = re.findall(r'"\$ref":"([^"]+)"', json.dumps(got, separators=(",", ":")))
        resolver = jsonschema.RefResolver.from_schema(got)
        for ref in set(refs):
            self.assertTrue(ref.startswith("#/"), ref)
            resolver.resolve(ref)

    def test_schemas_are_valid_and_state_the_code_limits(self):
        names = sorted(os.listdir(SCHEMAS))
        self.assertEqual(names, ["audit.schema.json", "dead-letter.schema.json", "event.schema.json",
                                 "job.schema.json", "profile.schema.json", "recipient.schema.json"])
        for name in names:
            s = load_schema(name)
            jsonschema.Draft202012Validator.check_schema(s)
            self.assertEqual(s["$schema"], "https://json-schema.org/draft/2020-12/schema")
        with open(os.path.join(DOCS, "openapi.yaml")) as f:
            yaml.safe_load(f)
        j = load_schema("job.schema.json")
        self.assertEqual(j["properties"]["recipients"]["maxItems"], c_define("job.h", "HERALD_JOB_MAX_RECIPIENTS"))
        self.assertEqual(j["properties"]["topic"]["maxLength"], c_define("job.h", "HERALD_TOPIC_MAX"))
        self.assertEqual(j["$defs"]["id"]["maxLength"], c_define("herald.h", "HERALD_ID_MAX"))
        with open(os.path.join(DAEMON, "job.c")) as f:
            key_max = int(re.search(r"#define RECIPIENTS_KEY_MAX (\d+)", f.read()).group(1))
        self.assertEqual(j["properties"]["recipients_key"]["maxLength"], key_max)
        self.assertIn("%d bytes" % c_define("job.h", "HERALD_JOB_MAX_BYTES"), j["description"])
        p = load_schema("profile.schema.json")["properties"]
        self.assertEqual(p["topics"]["maxProperties"], c_define("profile.h", "HERALD_PROFILE_MAX_TOPICS"))
        self.assertEqual(p["attributes"]["maxProperties"], c_define("profile.h", "HERALD_PROFILE_MAX_ATTRIBUTES"))
        self.assertEqual(p["id"]["maxLength"], c_define("herald.h", "HERALD_ID_MAX"))
        self.assertIn("%d bytes" % c_define("profile.h", "HERALD_PROFILE_MAX_BYTES"),
                      load_schema("profile.schema.json")["description"])
        rec = load_schema("recipient.schema.json")["properties"]["consent"]["items"]["properties"]
        self.assertEqual(rec["source"]["maxLength"], c_define("profile.h", "HERALD_CONSENT_SOURCE_MAX"))
        self.assertEqual(rec["text_version"]["maxLength"], c_define("profile.h", "HERALD_CONSENT_SOURCE_MAX"))

    def test_profile_recipient_and_document_agree(self):
        prof = load_schema("profile.schema.json")
        rec = load_schema("recipient.schema.json")
        self.assertEqual({k: v for k, v in rec["properties"].items() if k != "consent"}, prof["properties"],
                         "the import line is the profile plus consent")
        self.assertEqual((rec["required"], rec["additionalProperties"], prof["additionalProperties"]),
                         (["id"], False, False))
        with open(os.path.join(DOCS, "openapi.yaml")) as f:
            comps = yaml.safe_load(f)["components"]["schemas"]
        self.assertEqual(comps["QuietHours"], prof["properties"]["quiet_hours"])
        self.assertEqual(comps["Frequency"], prof["properties"]["frequency"])
        self.assertEqual(comps["Id"], {k: v for k, v in prof["properties"]["id"].items() if k != "description"})
        self.assertEqual(rec["properties"]["consent"]["items"]["properties"]["at"], load_schema("job.schema.json")["$defs"]["time"])

    def test_doc_examples_match_their_schemas(self):
        doc = bundled()
        job_s, rec_s = load_schema("job.schema.json"), load_schema("recipient.schema.json")
        # README: the recipient line and the job.
        ex = md_examples(os.path.join(harness.ROOT, "README.md"))
        kinds = []
        for heading, kind, value in ex:
            if kind != "json":
                continue
            schema = rec_s if "consent" in value else job_s if "content" in value else None
            self.assertIsNotNone(schema, "a README JSON example of no known shape (%s)" % heading)
            self.assertEqual(errors(schema, value), [], "README, %s" % heading)
            kinds.append(schema["title"])
        # The job twice: one content for everyone, and content per language.
        self.assertEqual(sorted(kinds), ["Campaign job", "Campaign job", "Recipient (a line of heraldctl import)"])
        # config/demo.
        with open(os.path.join(harness.ROOT, "config", "demo", "campaign.json")) as f:
            self.assertEqual(errors(job_s, json.load(f)), [])
        # The demo's recipients include lines made to be skipped: the schema
        # refuses exactly the lines heraldctl import skips.
        demo = os.path.join(harness.ROOT, "config", "demo", "recipients.jsonl")
        with open(demo) as f:
            refused = {n for n, line in enumerate(f, 1) if line.strip() and errors(rec_s, json.loads(line))}
        e = self.env()
        res = e.ctl("import", demo)
        skipped = {int(m) for m in re.findall(r"recipients\.jsonl:(\d+): ", res.stdout + res.stderr)}
        self.assertEqual(refused, skipped, res.stdout + res.stderr)
        self.assertTrue(refused, "the demo has a line to skip")
        # The e2e tests' own jobs and people.
        self.assertEqual(errors(job_s, job("c1", recipients=["a", "b"])), [])
        self.assertEqual(errors(job_s, job("c2", recipients_key="herald:lists:x", channels=["sms"])), [])
        self.assertEqual(errors(rec_s, person("p1", email="p1@example.com", phone="+15550100100",
                                              consent=["email", "sms"], topics={"news": False}, first_name="P")),
                         [])
        # docs/api.md: each JSON block is an answer of the operation its
        # heading names (2xx), each curl -d body its request.
        seen = 0
        for heading, kind, value in md_examples(os.path.join(DOCS, "api.md")):
            m = re.match(r"(GET|PUT|POST|PATCH|DELETE) (/[^ ,]*)", heading)
            self.assertTrue(m, "a JSON example under a heading that names no route: %r" % heading)
            op = doc["paths"][m.group(2)][m.group(1).lower()]
            if kind == "body":
                schema = op["requestBody"]["content"]["application/json"]["schema"]
            else:
                code = min(c for c in op["responses"] if c.startswith("2"))
                schema = deref(doc, op["responses"][code])["content"]["application/json"]["schema"]
            errs = [e.message for e in component_validator(doc, schema).iter_errors(value)]
            self.assertEqual(errs, [], "docs/api.md, %s (%s)" % (heading, kind))
            seen += 1
        self.assertGreaterEqual(seen, 12)

    def test_audit_records_match_their_schema(self):
        """A campaign with sent, suppressed (several reasons) and unknown
        recipients: every audit record it leaves matches audit.schema.json."""
        e = self.env()
        e.import_people([person("a1", email="a1.audit@example.com", consent=["email"], first_name="A"),
                         person("a2", email="a2.audit@example.com", first_name="B"),
                         person("a3", phone="+15550100177", channels=["sms"], consent=["sms"],
                                topics={"promotions": False})])
        h = e.start_herald()
        e.enqueue(job("audit-1", recipients=["a1", "a2", "a3", "ghost"], channels=["email", "sms"]))
        e.wait_campaign_done("audit-1", herald=h)
        recs = e.audit("audit-1")
        self.assertEqual(sorted((r["recipient"], r["outcome"], r["reason"]) for r in recs),
                         [("a1", "sent", ""), ("a2", "suppressed", "no_consent"),
                          ("a3", "suppressed", "topic_opt_out"), ("ghost", "suppressed", "unknown_recipient")])
        schema = load_schema("audit.schema.json")
        for r in recs:
            self.assertEqual(errors(schema, r), [], r["recipient"])
        self.assertEqual(h.stop(), 0)

    def test_the_schema_and_the_daemon_agree_on_jobs(self):
        """Each case: heraldctl enqueue (the daemon's job_parse) and the schema
        both accept it or both refuse it."""
        e = self.env()
        job_s = load_schema("job.schema.json")
        base = job("agree", recipients=["r1"], channels=["email", "sms"])

        def variant(**changes):
            j = json.loads(json.dumps(base))
            for k, v in changes.items():
                if v is None:
                    j.pop(k, None)
                else:
                    j[k] = v
            return j
        email_only = {"subject": "S {{first_name}}", "html": "<p>h</p>"}
        cases = [
            ("valid", variant(), True),
            ("html without text", variant(channels=["email"], content={"email": email_only}), True),
            ("recipients_key", variant(recipients=None, recipients_key="herald:lists:x"), True),
            ("times", variant(not_before="2026-12-01T09:00:00+01:00", expires_at="2026-12-02T00:00:00.5Z"), True),
            ("10000 recipients", variant(recipients=["r%d" % i for i in range(10000)]), True),
            ("10001 recipients", variant(recipients=["r%d" % i for i in range(10001)]), False),
            ("no topic", variant(topic=None), False),
            ("topic of 65", variant(topic="t" * 65), False),
            ("topic with a space", variant(topic="big sale"), False),
            ("no channels", variant(channels=[]), False),
            ("a channel twice", variant(channels=["email", "email"]), False),
            ("email without subject", variant(content={"email": {"text": "t"}, "sms": {"text": "t"}}), False),
            ("email without text or html", variant(content={"email": {"subject": "s"}, "sms": {"text": "t"}}), False),
            ("sms with a subject", variant(content={"email": email_only, "sms": {"text": "t", "subject": "s"}}),
             False),
            ("content for a channel not listed", variant(channels=["email"]), False),
            ("content missing a channel", variant(content={"email": email_only}), False),
            ("empty text", variant(content={"email": email_only, "sms": {"text": ""}}), False),
            ("id with @", variant(id="a@b.example"), False),
            ("id of 129", variant(id="i" * 129), False),
            ("recipient id with +", variant(recipients=["+15550100100"]), False),
            ("empty recipients", variant(recipients=[]), False),
            ("neither recipients nor key", variant(recipients=None), False),
            ("recipients_key of 513", variant(recipients=None, recipients_key="k" * 513), False),
            ("unknown key", variant(priority=1), False),
            ("date only", variant(expires_at="2026-12-01"), False),
            ("no time zone", variant(not_before="2026-12-01T09:00:00"), False),
            ("month 13", variant(not_before="2026-13-01T09:00:00Z"), False),
            ("rerun", variant(rerun=True), True),
            ("rerun not a boolean", variant(rerun="yes"), False),
        ]
        for name, text, _ in bad_jobs():
            try:
                value = json.loads(text)
            except ValueError:
                value = None   # not JSON: no schema can accept it
            if name == "oversized":
                continue       # a byte count: a rule the schema states in words only (see below)
            cases.append(("dead letter: " + name, value, False))
        disagree = []
        for i, (name, value, valid) in enumerate(cases):
            if isinstance(value, dict) and value.get("id") == "agree":
                value["id"] = "agree-%d" % i   # each valid case is a run of its own id
            schema_ok = value is not None and not list(validator(job_s).iter_errors(value))
            path = e.write("agree-%d.json" % i, json.dumps(value) if value is not None else "{")
            res = e.ctl("enqueue", path)
            daemon_ok = res.returncode == 0
            if (schema_ok, daemon_ok) != (valid, valid):
                disagree.append((name, "schema", schema_ok, "daemon", daemon_ok, res.stderr.strip()[-200:]))
        self.assertEqual(disagree, [], "cases where the schema, the daemon and the table disagree")
        # The size limit: the oversized dead-letter job is otherwise valid.
        huge = [json.loads(t) for n, t, _ in bad_jobs() if n == "oversized"][0]
        self.assertEqual(errors(job_s, huge), [])
        self.assertGreater(len(json.dumps(huge)), c_define("job.h", "HERALD_JOB_MAX_BYTES"))


class ContractTraffic(harness.HeraldTestCase):
    """The routes test_api.py and test_campaign_control.py do not reach,
    through Prism proxies in front of both listeners."""

    def setUp(self):
        why = prism.available()
        if why:
            self.skipTest(why)

    def get(self, url, headers=None, data=None, method=None):
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def test_prism_compiles_every_schema(self):
        """Prism validates nothing for a body or header whose schema it cannot
        compile (it swallows the error): every schema of the document must
        compile the way Prism compiles it (tests/e2e/prism_compile.js)."""
        node = shutil.which("node")
        if not node:
            self.skipTest("node not installed")
        modules = os.path.dirname(os.path.dirname(prism.PRISM_BIN))
        res = subprocess.run([node, os.path.join(os.path.dirname(os.path.abspath(__file__)), "prism_compile.js"),
                              modules, harness.OPENAPI], capture_output=True, text=True, timeout=120)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        n = int(re.search(r"compiled (\d+) of \1 schemas", res.stdout).group(1))
        self.assertGreater(n, 100, res.stdout)

    def test_the_proxy_catches_a_violation(self):
        """The harness's proxy is no pass-through: a body the document
        refuses is answered 422 by Prism, never reaches herald, and is listed
        by violations() (which fails a test at teardown)."""
        e = self.env()
        e.start_herald()
        p = prism.Prism(harness.OPENAPI, e.path("prism-check.log"),
                        upstream="http://127.0.0.1:%d" % e.admin_port).start()
        self.addCleanup(p.stop)
        status, _, _ = self.get(p.url + "/v1/recipients/v1", method="PUT", data=b'{"email": 5}',
                                headers={"Authorization": "Bearer e2e-admin-token-0123456789",
                                         "Content-Type": "application/json"})
        self.assertEqual(status, 422)
        self.assertFalse(e.r.exists("herald:r:{v1}"), "the refused request reached herald")
        harness.wait_for("the violation in Prism's log", lambda: p.violations(), 10)

    def test_admin_and_public_routes_through_prism(self):
        e = self.env()
        e.import_people([person("t1", email="t1.contract@example.com", consent=["email"], first_name="T")])
        e.start_herald()
        base = e.api_url()
        self.assertNotEqual(base, e.api_url(direct=True), "not through Prism")
        for path in ("/healthz", "/metrics", "/v1/openapi.json"):
            status, headers, _ = self.get(base + path)
            self.assertEqual(status, 200, path)
            self.assertNotIn("sl-violations", {k.lower() for k in headers}, path)
        status, _, body = self.get(base + "/v1/campaigns/nothing-here",
                                   headers={"Authorization": "Bearer e2e-admin-token-0123456789"})
        self.assertEqual((status, json.loads(body)), (404, {"error": "campaign not found"}))
        # The public listener: a forged link token gets the 403 page; the
        # callbacks of providers the configuration lacks are 404.
        pub = prism.Prism(harness.OPENAPI, e.path("prism-public.log"),
                          upstream="http://127.0.0.1:%d" % e.public_port).start()
        self.addCleanup(pub.stop)
        for path in ("/u/eyJhIjoxfQ.c2ln", "/p/eyJhIjoxfQ.c2ln"):
            status, headers, body = self.get(pub.url + path)
            self.assertEqual(status, 403, path)
            self.assertIn("text/html", headers.get("content-type", ""))
        status, _, body = self.get(pub.url + "/v1/webhooks/sendgrid", method="POST", data=b"[]",
                                   headers={"Content-Type": "application/json",
                                            "X-Twilio-Email-Event-Webhook-Signature": "MEUCIQ==",
                                            "X-Twilio-Email-Event-Webhook-Timestamp": "1700000000"})
        self.assertEqual(status, 404)
        self.assertIn("error", json.loads(body))
        status, _, body = self.get(pub.url + "/v1/webhooks/twilio", method="POST", data=b"From=%2B1555&Body=STOP",
                                   headers={"Content-Type": "application/x-www-form-urlencoded",
                                            "X-Twilio-Signature": "c2ln"})
        self.assertEqual(status, 404)
        self.assertIn("error", json.loads(body))
        self.assertEqual(pub.violations(), [], "the public listener's answers do not match docs/openapi.yaml")


if __name__ == "__main__":
    harness.main()
