"""Each webhook request is whole and its own, and each message reads as its
person's attributes say.

The webhook plugin sets the same curl options for every request, so the
daemon hands it the easy handle of the previous request without resetting
it (HERALD_CHANNEL_SAME_OPTIONS, docs/plugin-abi.md); with concurrency = 1
every request here goes through that one handle. Each must still carry
exactly the webhook's headers, its own body, a signature over that body and
its own Idempotency-Key, whatever the request before it was: a body over
1 KiB (where curl would add "Expect: 100-continue") next to short ones.
The attributes come from the sealed contact data, read in place as text
when they are plain (strings, integers, booleans) and through the JSON
parser otherwise (escapes, reals): both render the same values."""

import hashlib
import hmac
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job, person  # noqa: E402

HEADERS = {"host", "accept", "content-type", "user-agent", "content-length", "idempotency-key",
           "x-herald-signature"}
TEXT = "{{first_name}} is {{age}}, vip {{vip}}, from {{city|nowhere}}, score {{score}}{{missing}}. {{bio}}"


class WebhookRequests(harness.HeraldTestCase):

    def test_one_handle_many_requests_each_exact(self):
        srv = FaultServer([{"status": 202, "body": '{"id":"wr"}'}])
        self.addCleanup(srv.stop)
        e = self.env(log_level="info")
        conf = e.hook_config(srv.url, provider="concurrency = 1")
        bio = "B" * 1500
        ppl = [person("wr-ann", email="ann.wr@example.com", channels=["email"], consent=["email"],
                      first_name="Ann", age=41, vip=True, city="Gothenburg", bio=bio),
               person("wr-bo", email="bo.wr@example.com", channels=["email"], consent=["email"],
                      first_name="Bo", age=-7, vip=False, bio="short"),
               # Not plain: an escaped quote, a real; read through the parser.
               person("wr-zoe", email="zoe.wr@example.com", channels=["email"], consent=["email"],
                      first_name='Zo\u00eb "Z"', age=0, vip=True, city="Lund", score=1.5, bio=""),
               person("wr-none", email="none.wr@example.com", channels=["email"], consent=["email"])]
        e.import_people(ppl)
        ids = [p["id"] for p in ppl]
        h = e.start_herald(config=conf)
        j = job("wr-1", recipients=ids * 1, channels=["email"])
        j["content"]["email"] = {"subject": "Hi {{first_name}}", "text": TEXT}
        e.enqueue(j)
        e.wait_campaign_done("wr-1", herald=h, timeout=60)
        want = {"wr-ann": "Ann is 41, vip true, from Gothenburg, score . " + bio,
                "wr-bo": "Bo is -7, vip false, from nowhere, score . short",
                "wr-zoe": 'Zo\u00eb "Z" is 0, vip true, from Lund, score 1.5. ',
                "wr-none": " is , vip , from nowhere, score . "}
        self.assertEqual(len(srv.requests), len(ids))
        keys = set()
        for req in srv.requests:
            hd, body = req["headers"], req["body"]
            raw = body.encode() if isinstance(body, str) else body
            self.assertEqual(set(hd), HEADERS, "headers of one request")
            self.assertEqual(hd["content-type"], "application/json")
            self.assertEqual(hd["user-agent"], "herald-webhook/1")
            self.assertEqual(int(hd["content-length"]), len(raw))
            sig = hmac.new(harness.HOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
            self.assertEqual(hd["x-herald-signature"], "sha256=" + sig)
            doc = json.loads(raw)
            self.assertEqual(doc["text"], want[doc["recipient"]], doc["recipient"])
            self.assertEqual(doc["subject"], "Hi " + want[doc["recipient"]].split(" is ")[0])
            keys.add(hd["idempotency-key"])
        self.assertEqual(len(keys), len(ids), "an Idempotency-Key per message")
        self.assertGreater(max(int(r["headers"]["content-length"]) for r in srv.requests), 1024)
        by = self.assertConsistent(e, "wr-1", ids)
        self.assertEqual({r["outcome"] for r in by.values()}, {"sent"})
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
