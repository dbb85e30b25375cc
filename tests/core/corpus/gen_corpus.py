#!/usr/bin/env python3
"""Writes the decoder corpus: one message per file, named <class>_<what>_<nnn>.json.

The class prefix (valid, oversize, syntax, notobject, missing, type, duplicate, uuid, time,
vote) is what tests/core/test_decode.c expects tally_decode_vote to answer. Deterministic:
run it from anywhere, it rewrites this folder's *.json files.
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(20260507)

FIRST_F = ["Eleanor", "Siân", "Zoë", "Aoife", "Rhiannon", "Eilidh", "Charlotte", "Imogen",
           "Niamh", "Ffion", "Harriet", "Priya", "Siobhán", "Chloë", "Beatrice", "Mhairi"]
FIRST_M = ["Oliver", "Dafydd", "Seán", "Callum", "Hamish", "Rhys", "Alfie", "Ruairí",
           "Tomás", "Idris", "Arjun", "Gethin", "Archibald", "Fergus", "Kieran", "Ewan"]
LAST = ["Whitfield", "Ap Rhys", "O'Sullivan", "MacLeod", "Pemberton", "Llewellyn", "Ó Briain",
        "Featherstonehaugh", "Cholmondeley", "Patel", "Ferguson", "Thistlethwaite", "Bryant",
        "Ní Dhomhnaill", "Hughes", "Okonkwo-Smith"]
PLACES = [("Church Lane", "Bristol", "Somerset", "BS1 4DJ"),
          ("High Street", "Llanfairpwllgwyngyll", "Ynys Môn", "LL61 5UJ"),
          ("Station Road", "Inverness", "Highland", "IV1 1AA"),
          ("Mill Lane", "Keswick", "Cumbria", "CA12 5JR"),
          ("Queen Street", "Caerdydd", "South Glamorgan", "CF10 2BH"),
          ("The Green", "Stow-on-the-Wold", "Gloucestershire", "GL54 1AF"),
          ("Victoria Road", "Belfast", "County Antrim", "BT1 5GS"),
          ("King's Road", "Brighton and Hove", "East Sussex", "BN1 2FL"),
          ("Shore Road", "Stornoway", "Na h-Eileanan Siar", "HS1 2XX"),
          ("Castle Street", "Truro", "Cornwall", "TR1 3AH")]
PARTIES = ["Management Party", "Savior Party", "Tech Republic Party"]
CANDIDATES = [
    ("6f1c2a9e-4b7d-4e21-9a3f-0c5d8e7b1a24", "Margaret Ashworth", PARTIES[0]),
    ("b3e0d7c4-1f2a-4c8e-8d6b-5a9f3e2c7d10", "Gareth Pryce-Jones", PARTIES[1]),
    ("0d9a4f8b-7c3e-4a1d-b2f6-e8c5a7d9b3f2", "Isobel Ní Chonaill", PARTIES[2]),
]
WORDS = ("a lifelong advocate for rural bus routes, the NHS, fair rents, flood defences along "
         "the Severn, broadband for the Highlands, apprenticeships in Teesside, libraries, "
         "cleaner rivers and a railway that runs on time from Penzance to Thurso").split()

files = {}

# 2**1024 - 2**970: the least real that overflows a double (it rounds to even, upwards).
T_AT = str(2 ** 1024 - 2 ** 970)
T_BELOW = str(2 ** 1024 - 2 ** 970 - 1)
T_AT_E308 = T_AT[0] + "." + T_AT[1:] + "e308"
T_BELOW_E308 = T_BELOW[0] + "." + T_BELOW[1:] + "e308"
counters = {}


def uuid(r=rng):
    h = "%032x" % r.getrandbits(128)
    h = h[:12] + "4" + h[13:16] + "89ab"[r.randrange(4)] + h[17:]
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def vtime(r=rng):
    return "2026-05-07 %02d:%02d:%02d" % (r.randrange(7, 22), r.randrange(60), r.randrange(60))


def sentence(n, r=rng):
    return " ".join(r.choice(WORDS) for _ in range(n)).capitalize() + "."


def full(r=rng, **over):
    fem = r.random() < 0.5
    first = r.choice(FIRST_F if fem else FIRST_M)
    last = r.choice(LAST)
    street, city, state, postcode = r.choice(PLACES)
    cid, cname, party = r.choice(CANDIDATES)
    user = "".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8)) + str(r.randrange(100, 999))
    m = {
        "voter_id": uuid(r),
        "voter_name": "%s %s" % (first, last),
        "date_of_birth": "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
            r.randrange(1940, 2007), r.randrange(1, 13), r.randrange(1, 29),
            r.randrange(24), r.randrange(60), r.randrange(60), r.randrange(1000)),
        "gender": "female" if fem else "male",
        "nationality": "GB",
        "registration_number": user,
        "address": {"street": "%d %s" % (r.randrange(1, 9999), street), "city": city,
                    "state": state, "country": "United Kingdom", "postcode": postcode},
        "email": "%s.%s@example.org" % (first.lower(), last.lower().replace(" ", "").replace("'", "")),
        "phone_number": "01%d%d%d %06d" % (r.randrange(10), r.randrange(10), r.randrange(10), r.randrange(10**6)),
        "cell_number": "07%03d %06d" % (r.randrange(1000), r.randrange(10**6)),
        "picture": "https://portraits.example.org/%s/%d.jpg" % ("women" if fem else "men", r.randrange(100)),
        "registered_age": r.randrange(0, 20),
        "candidate_id": cid,
        "candidate_name": cname,
        "party_affiliation": party,
        "biography": sentence(30, r),
        "campaign_platform": sentence(25, r),
        "photo_url": "https://portraits.example.org/candidates/%s.jpg" % cid[:8],
        "voting_time": vtime(r),
        "vote": 1,
    }
    for k, v in over.items():
        if v is DEL:
            m.pop(k, None)
        else:
            m[k] = v
    return m


def compact(r=rng, **over):
    m = {"voter_id": uuid(r), "candidate_id": r.choice(CANDIDATES)[0], "voting_time": vtime(r)}
    for k, v in over.items():
        if v is DEL:
            m.pop(k, None)
        else:
            m[k] = v
    return m


DEL = object()


def dumps(m, style=0):
    if style == 0:
        return json.dumps(m, ensure_ascii=False)
    if style == 1:
        return json.dumps(m, ensure_ascii=False, separators=(",", ":"))
    if style == 2:
        return json.dumps(m, ensure_ascii=False, indent=2)
    if style == 3:
        return json.dumps(m, ensure_ascii=True)
    if style == 4:
        return json.dumps(m, ensure_ascii=False, indent="\t").replace("\n", "\r\n")
    raise ValueError(style)


def emit(cls, what, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    key = (cls, what)
    counters[key] = counters.get(key, 0) + 1
    name = "%s_%s_%03d.json" % (cls, what, counters[key])
    files[name] = data


def swap(text, old, new, count=1):
    assert old in text, (old, text[:80])
    return text.replace(old, new, count)


def main():
    # ---- valid ----------------------------------------------------------------------
    for i in range(30):
        emit("valid", "full", dumps(full(), i % 5))
    for i in range(10):
        emit("valid", "compact", dumps(compact(), i % 5))
    for t in ["2026-05-07 09:15:00", "2026-05-07T09:15:00Z", "2026-05-07T10:15:00+01:00",
              "2026-05-07T04:15:00-05:00", "2026-05-07 09:15:00.123456", "2026-05-07T09:15:00.5Z",
              "2026-05-07T23:30:00.999999999999999999999-00:30", "2024-02-29 12:00:00",
              "0001-01-01 00:00:00", "9999-12-31T23:59:59Z", "2000-02-29T00:00:00+14:00",
              "2026-05-07T00:00:00+23:59", "1970-01-01 00:00:00"]:
        emit("valid", "time", dumps(compact(voting_time=t)))
    emit("valid", "novote", dumps(full(vote=DEL)))
    emit("valid", "novote", dumps(compact()))
    emit("valid", "vote", dumps(compact(vote=1)))
    emit("valid", "uppercase", dumps(compact(voter_id=uuid().upper())))
    # Escapes in keys and values; unicode.
    base = dumps(compact(), 1)
    emit("valid", "escape", swap(base, '"voter_id"', '"vot\\u0065r_id"'))
    emit("valid", "escape", swap(base, '"candidate_id"', '"\\u0063andidate\\u005fid"'))
    emit("valid", "escape", swap(base, '"voting_time"', '"voting\\u005Ftime"'))
    m = compact()
    emit("valid", "escape", dumps(m, 1).replace(m["voter_id"], m["voter_id"].replace("-", "\\u002d")))
    emit("valid", "escape", dumps(m, 1).replace(m["voting_time"], m["voting_time"].replace(" ", "\\u0020").replace(":", "\\u003a")))
    emit("valid", "escape", dumps(m, 1).replace(m["voting_time"], m["voting_time"].replace("-", "\\/").replace("\\/", "-", 2) if False else m["voting_time"]))
    emit("valid", "escape", dumps(full(voter_name="Siân \"Sunny\" O'Hare\\Llwyd\n\t/\b\f\r"), 1))
    emit("valid", "escape", dumps(full(biography="Votes 🗳️ for 🏴󠁧󠁢󠁷󠁬󠁳󠁿 Wales and 🇬🇧"), 3))
    emit("valid", "escape", dumps(full(biography="Votes 🗳️ for 🏴󠁧󠁢󠁷󠁬󠁳󠁿 Wales and 🇬🇧"), 0))
    emit("valid", "escape", swap(dumps(compact(), 1), "{", '{"note":"\\uD83D\\uDDF3\\uffff\\u0001\\u007f\\u0080\\u07FF\\u0800\\uDBFF\\uDFFF",'))
    emit("valid", "unicode", dumps(full(voter_name="Llŷr ap Gruffudd", address={"street": "1 Ffordd yr Orsaf", "city": "Llanelwy", "state": "Sir Ddinbych", "country": "Cymru", "postcode": "LL17 0AA"})))
    emit("valid", "unicode", dumps(full(voter_name="Ælfgifu Þorsdóttir-Smith", email="ælf@example.org")))
    emit("valid", "unicode", dumps(full(voter_name="张伟 Zhang", biography="日本語テキスト and Ελληνικά and עברית and \u00a0\u2028\u2029\ufeff")))
    emit("valid", "unicode", swap(dumps(compact(), 1), "{", '{"raw":"\x7f\u0080\u07ff\u0800\uffff\U00010000\U0010ffff",'))
    # Nesting, arrays of objects.
    emit("valid", "nested", swap(dumps(compact(), 1), "{", '{"deep":' + "[" * 2046 + "1" + "]" * 2046 + ","))
    emit("valid", "nested", swap(dumps(compact(), 1), "{", '{"deep":' + "[" * 2047 + "]" * 2047 + ","))
    emit("valid", "nested", swap(dumps(compact(), 1), "{", '{"deep":' + '{"a":' * 2046 + "null" + "}" * 2046 + ","))
    emit("valid", "nested", swap(dumps(compact(), 1), "{", '{"deep":' + '{"a":' * 2046 + "{}" + "}" * 2046 + ","))
    emit("valid", "arrays", dumps(full(history=[{"election": "2024 general", "voted": True, "booth": [1, 2.5, None, False, "x", {}, []]}] * 5)))
    emit("valid", "arrays", dumps(compact(extras=[[], {}, [[]], [{}], {"a": [{"b": [{"c": []}]}]}])))
    emit("valid", "arrays", dumps(compact(extras=[full(), full()])))
    emit("valid", "nested", dumps(compact(meta={"voter_id": 5, "vote": "no", "voting_time": None, "candidate_id": []})))
    # Numbers at the edges.
    for n in ["9223372036854775807", "-9223372036854775808", "0", "-0", "0.0", "-0.0e-0",
              "1.7976931348623157e308", "-1.7976931348623157e308", "1.7976931348623158e308",
              T_BELOW + "e0", T_BELOW_E308, T_BELOW + "." + "9" * 500 + "e0", "0." + T_BELOW + "e309",
              "0.17976931348623158e309", "5e-324", "2e-324", "1e-400", "-1e-99999999999999999999",
              "0e99999999999999", "0.000000e400", "1E+2", "1e-0", "123456789012345678", "1.5", "-12.75e+3",
              "0.0000000000000000000000000000000000000000000001e354"]:
        emit("valid", "number", swap(dumps(compact(), 1), "{", '{"n":' + n + ","))
    # Whitespace variants.
    emit("valid", "ws", " \t\r\n" + dumps(compact(), 2) + "\n\r\t ")
    emit("valid", "ws", "{  " + json.dumps(compact(), separators=(" ,\t", "\r\n:\n "))[1:])
    emit("valid", "ws", dumps(full(), 4))
    # jansson loses one NUL right after a number or a literal.
    emit("valid", "nul", swap(dumps(compact(), 1), "{", '{"registered_age":9\x00,'))
    emit("valid", "nul", swap(dumps(compact(), 1), "{", '{"a":true\x00,"b":false\x00 ,"c":null\x00\n,"d":[1.5e3\x00,-0\x00],'))
    emit("valid", "nul", swap(dumps(compact(vote=1), 1), '"vote":1', '"vote":1\x00'))
    # Repeated unread keys are fine.
    emit("valid", "dupunread", swap(dumps(compact(), 1), "{", '{"voter_name":"A","voter_name":"B",'))
    emit("valid", "dupunread", dumps(compact(), 1)[:-1] + ',"address":{"city":"Bath","city":"Wells"},"address":[]}')
    emit("valid", "dupunread", swap(dumps(compact(), 1), "{", '{"nested":{"voter_id":1,"voter_id":2},'))
    emit("valid", "empty", swap(dumps(compact(), 1), "{", '{"":"","e":{},"f":[],'))

    # ---- oversize -------------------------------------------------------------------
    emit("oversize", "big", dumps(compact(padding="x" * 70000)))

    # ---- syntax ---------------------------------------------------------------------
    msg = dumps(full(), 0).encode()
    for cut in [1, 2, 10, 40, 100, 200, 400, 700, len(msg) - 2, len(msg) - 1]:
        emit("syntax", "truncated", msg[:cut])
    msg = dumps(compact(voting_time="2026-05-07T09:15:00.5Z"), 1).encode()
    for cut in range(5, len(msg), 11):
        emit("syntax", "truncated", msg[:cut])
    emit("syntax", "truncated", b'{"voter_id":"\\u00')
    emit("syntax", "truncated", b'{"a":"\xc3')
    emit("syntax", "truncated", b'{"a":"\xe2\x82')
    emit("syntax", "truncated", b'{"a":tru')
    emit("syntax", "truncated", b'{"a":-')
    emit("syntax", "truncated", b'{"a":1.')
    emit("syntax", "truncated", b'{"a":1e')
    emit("syntax", "bom", b"\xef\xbb\xbf" + dumps(compact()).encode())
    c = dumps(compact(), 1).encode()
    emit("syntax", "nul", b"\x00" + c)
    emit("syntax", "nul", c + b"\x00")
    emit("syntax", "nul", c.replace(b'"voter_id"', b'"voter\x00id"'))
    emit("syntax", "nul", c.replace(b",", b",\x00", 1))
    emit("syntax", "nul", c.replace(b":", b"\x00:", 1))
    emit("syntax", "nul", c[:-1] + b',"a":1\x00\x00}')
    emit("syntax", "nul", c[:-1] + b',"a":"x"\x00}')
    emit("syntax", "nul", c[:-1] + b',"a":{}\x00}')
    emit("syntax", "nul", c.replace(b'"voting_time":"', b'"voting_time":"\\u0000'))
    emit("syntax", "nul", c.replace(b'"voter_id"', b'"voter_id\\u0000"'))
    for bad in [b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xe0\x9f\xbf",
                b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf",
                b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xff", b"\xfe", b"\xc3", b"\xc3\x28",
                b"\xe2\x82\x28", b"\xf0\x9f\x98", b"\xf8\x88\x80\x80\x80"]:
        emit("syntax", "utf8", c[:-1] + b',"voter_name":"Zo' + bad + b'"}')
    emit("syntax", "utf8", c.replace(b'"voter_id"', b'"voter\xe9id"'))
    emit("syntax", "utf8", c.replace(b",", b",\xc2\xa0", 1))
    emit("syntax", "utf8", c + b"\xe2\x80\x8b")
    emit("syntax", "utf8", b"\xef\xbb" + c)
    for ctl in [b"\x01", b"\x09", b"\x0a", b"\x0d", b"\x1f"]:
        emit("syntax", "control", c[:-1] + b',"biography":"line one' + ctl + b'line two"}')
    for esc in [b"\\x41", b"\\u12", b"\\u12G4", b"\\uZZZZ", b"\\U0041", b"\\a", b"\\'", b"\\0",
                b"\\uD800", b"\\uDC00", b"\\uDBFF\\u0041", b"\\uDE00\\uD83D", b"\\uD83D\\uD83D",
                b"\\uD83Dx", b"\\uD83D\\n", b"\\", b"\\ud800\\udc0"]:
        emit("syntax", "escape", c[:-1] + b',"voter_name":"Rhys' + esc + b'"}')
    emit("syntax", "escape", c.replace(b'"voter_id"', b'"voter_\\id"'))
    for num in [b"01", b"-01", b"00", b"-", b"1.", b".5", b"+1", b"1e", b"1e+", b"1.e5", b"0x10",
                b"Infinity", b"-Infinity", b"NaN", b"1,5", b"--1", b"1..2", b"1e5.5", b"\xd9\xa1",
                b"9223372036854775808", b"-9223372036854775809", b"99999999999999999999",
                b"100000000000000000000000", b"1e309", b"-1e309", b"1.8e308", b"2e308",
                T_AT.encode() + b"e0", T_AT_E308.encode(), T_AT.encode() + b".000000001e0", (T_AT + "0" * 500 + "e-500").encode(),
                b"0.0000000000000000000000000000000000000000000001e355", b"1e99999999999999999999",
                b"-" + T_AT.encode() + b"e0"]:
        emit("syntax", "number", c[:-1] + b',"registered_age":' + num + b"}")
    for lit in [b"tru", b"True", b"TRUE", b"nul", b"NULL", b"fals", b"truee", b"nulls", b"undefined", b"'x'"]:
        emit("syntax", "literal", c[:-1] + b',"flag":' + lit + b"}")
    emit("syntax", "trailing", c + b" x")
    emit("syntax", "trailing", c + c)
    emit("syntax", "trailing", c + b",")
    emit("syntax", "trailing", c + b"}")
    emit("syntax", "trailing", c + b"\n\n// comment")
    emit("syntax", "trailing", c + b" 1")
    emit("syntax", "structure", c[:-1] + b",}")
    emit("syntax", "structure", c[:-1] + b',"a":[1,2,]}')
    emit("syntax", "structure", c.replace(b",", b" ", 1))
    emit("syntax", "structure", c.replace(b":", b" ", 1))
    emit("syntax", "structure", c.replace(b":", b"=", 1))
    emit("syntax", "structure", c.replace(b'"voter_id"', b"voter_id"))
    emit("syntax", "structure", c.replace(b'"voter_id"', b"'voter_id'"))
    emit("syntax", "structure", c.replace(b"{", b"{/* note */", 1))
    emit("syntax", "structure", c[:-1] + b',"a":[1 2]}')
    emit("syntax", "structure", c[:-1] + b',"a":{"b"}}')
    emit("syntax", "structure", c[:-1] + b',"a":{"b":1]}')
    emit("syntax", "structure", c[:-1] + b',"a":[1}}')
    emit("syntax", "structure", c[:-1] + b',,"a":1}')
    emit("syntax", "structure", b"{," + c[1:])
    emit("syntax", "structure", c[:-1] + b',"a":1:2}')
    emit("syntax", "structure", c[:-1] + b',1:2}')
    emit("syntax", "structure", c.replace(b"{", b"{\x0b", 1))
    emit("syntax", "structure", c.replace(b"{", b"{\x0c", 1))
    emit("syntax", "structure", c.replace(b"{", b"{\xc2\xa0", 1))
    emit("syntax", "depth", c[:-1] + b',"deep":' + b"[" * 2049 + b"]" * 2049 + b"}")
    emit("syntax", "depth", c[:-1] + b',"deep":' + b"[" * 2047 + b"1" + b"]" * 2047 + b"}")
    emit("syntax", "depth", c[:-1] + b',"deep":' + b'{"a":' * 2047 + b"{}" + b"}" * 2047 + b"}")
    emit("syntax", "depth", b"[" * 60000)
    emit("syntax", "depth", b"[" * 2049 + b"]" * 2049)
    emit("syntax", "empty", b"")
    emit("syntax", "empty", b" \n\t\r ")
    emit("syntax", "unterminated", c[:-1] + b',"voter_name":"Alfie}')
    emit("syntax", "unterminated", b'{"voter_id')
    emit("syntax", "garbage", b"voter_id=abc&candidate_id=def")
    emit("syntax", "garbage", b"<vote><voter_id/></vote>")
    emit("syntax", "garbage", b"\x00\x00\x00\x00")
    emit("syntax", "garbage", bytes(range(256)))
    # A syntax error wins over field errors anywhere in the message.
    emit("syntax", "priority", b'{"voter_id":5,"vote":2,"x":[01]}')
    emit("syntax", "priority", b'{"voter_id":"x","voter_id":"y"} junk')
    emit("syntax", "priority", b'[1,2,3')
    emit("syntax", "priority", b'"unterminated')
    emit("syntax", "priority", b'tru')
    emit("syntax", "priority", b'1 2')
    emit("syntax", "priority", b'1\x00\x00')

    # ---- not an object --------------------------------------------------------------
    emit("notobject", "array", "[" + dumps(compact()) + "]")
    emit("notobject", "array", "[]")
    emit("notobject", "array", " [ ] ")
    emit("notobject", "array", "[" + dumps(full()) + "," + dumps(full()) + "]")
    emit("notobject", "scalar", '"' + uuid() + '"')
    emit("notobject", "scalar", "42")
    emit("notobject", "scalar", "-1.5e10")
    emit("notobject", "scalar", "true")
    emit("notobject", "scalar", "null")
    emit("notobject", "scalar", " false \n")
    emit("notobject", "scalar", b"7\x00")
    emit("notobject", "scalar", b"null\x00  ")

    # ---- missing --------------------------------------------------------------------
    for f in ["voter_id", "candidate_id", "voting_time"]:
        emit("missing", f, dumps(full(**{f: DEL})))
        emit("missing", f, dumps(compact(**{f: DEL})))
    emit("missing", "all", "{}")
    emit("missing", "all", ' { } ')
    emit("missing", "all", dumps({"vote": 1}))
    emit("missing", "nested", dumps({"vote": compact()}) .replace('"vote":', '"ballot":'))
    emit("missing", "case", swap(dumps(compact(), 1), '"voter_id"', '"Voter_ID"'))
    emit("missing", "space", swap(dumps(compact(), 1), '"voter_id"', '"voter_id "'))
    emit("missing", "unicode", swap(dumps(compact(), 1), '"voter_id"', '"voter\\u2010id"'))
    emit("missing", "order", dumps(compact(voter_id=DEL, candidate_id=5)))

    # ---- type -----------------------------------------------------------------------
    for f, v in [("voter_id", 12345), ("voter_id", None), ("voter_id", [uuid()]),
                 ("voter_id", {"uuid": uuid()}), ("voter_id", True), ("candidate_id", 3),
                 ("candidate_id", False), ("candidate_id", 1.5), ("voting_time", 1778146500),
                 ("voting_time", {"date": "2026-05-07"}), ("voting_time", None),
                 ("vote", "1"), ("vote", 1.0), ("vote", True), ("vote", None), ("vote", [1]),
                 ("vote", {"n": 1})]:
        emit("type", f, dumps(full(**{f: v})))
    emit("type", "vote", swap(dumps(compact(vote=1), 1), '"vote":1', '"vote":1e0'))
    emit("type", "vote", swap(dumps(compact(vote=1), 1), '"vote":1', '"vote":1E+0'))
    emit("type", "vote", swap(dumps(compact(vote=1), 1), '"vote":1', '"vote":10e-1'))
    emit("type", "order", dumps(compact(voter_id=1, voting_time="bad")))
    emit("type", "order", dumps(compact(voting_time=DEL, voter_id=[])))

    # ---- duplicate ------------------------------------------------------------------
    c = dumps(compact(vote=1), 1)
    for f in ["voter_id", "candidate_id", "voting_time", "vote"]:
        m = compact(vote=1)
        emit("duplicate", f, dumps(m, 1)[:-1] + "," + json.dumps(f) + ":" + json.dumps(m[f]) + "}")
    emit("duplicate", "escaped", c[:-1] + ',"vot\\u0065r_id":"' + uuid() + '"}')
    emit("duplicate", "escaped", c[:-1] + ',"\\u0076\\u006f\\u0074\\u0065":1}')
    emit("duplicate", "badvalues", c[:-1] + ',"voter_id":5}')
    emit("duplicate", "badvalues", '{"vote":2,"voter_id":1,"vote":3}')
    emit("duplicate", "full", dumps(full(), 0)[:-1] + ', "candidate_id": "' + CANDIDATES[1][0] + '"}')
    emit("duplicate", "thrice", '{"vote":1,"vote":1,"vote":1}')

    # ---- uuid -----------------------------------------------------------------------
    u = uuid()
    for bad in [u[:-1], u + "0", u.replace("-", ""), "{" + u + "}", u[:8] + "_" + u[9:],
                u[:3] + "g" + u[4:], " " + u, u + " ", "", "not-a-uuid", u[:8] + u[9:13] + "-" + u[13:],
                "urn:uuid:" + u, u.replace("-", "\u2010"), u[:35] + "é"]:
        emit("uuid", "voter_id", dumps(full(voter_id=bad)))
    emit("uuid", "candidate_id", dumps(compact(candidate_id="Margaret Ashworth")))
    emit("uuid", "candidate_id", dumps(compact(candidate_id=u[:20])))
    emit("uuid", "escaped", swap(dumps(compact(voter_id=u), 1), u, u[:8] + "\\u005f" + u[9:]))
    emit("uuid", "escaped", swap(dumps(compact(voter_id=u), 1), u, u[:8] + "\\u00e9" + u[9:]))
    emit("uuid", "order", dumps(compact(voter_id="x", voting_time="y")))

    # ---- time -----------------------------------------------------------------------
    for t in ["2026-13-07 09:15:00", "2026-00-07 09:15:00", "2026-02-30 09:15:00", "2025-02-29 09:15:00",
              "1900-02-29 12:00:00", "2026-04-31 12:00:00", "2026-05-00 12:00:00", "2026-05-07 24:00:00",
              "2026-05-07 09:60:00", "2026-05-07 09:15:60", "2026-05-07T09:15:00+24:00",
              "2026-05-07T09:15:00+05:60", "2026-05-07t09:15:00Z", "2026-05-07T09:15:00",
              "2026-05-07 09:15:00Z", "0000-01-01 00:00:00", "2026-05-07", "2026/05/07 09:15:00",
              "2026-05-07 09:15:00.", "2026-05-07 09:15", "1778146500", "", "07/05/2026 09:15:00",
              "2026-05-07T09:15:00+0100", "2026-05-07T09:15:00+01", "2026-05-07T09:15:00 Z",
              "2026-05-07T09:15:00z", "2026-5-7 9:15:00", " 2026-05-07 09:15:00",
              "2026-05-07 09:15:00 ", "2026-05-07  09:15:00", "+2026-05-07 09:15:00",
              "2026-05-07T09:15:00.Z", "2026-05-07T09:15:00.12.3Z", "2026-05-07T09:15:00Z+01:00",
              "2026-05-07 09:15:00.1234567890123", "10000-01-01 00:00:00", "-001-01-01 00:00:00",
              "2026-05-07 ٠٩:15:00", "2026-05-07\u200909:15:00"]:
        if t == "2026-05-07 09:15:00.1234567890123":
            t = t + "x"
        emit("time", "voting_time", dumps(compact(voting_time=t)))
    emit("time", "escaped", swap(dumps(compact(voting_time="2026-05-07 09:15:00"), 1), "09:15", "09\\u003b15"))
    emit("time", "escaped", swap(dumps(compact(voting_time="2026-05-07 09:15:00"), 1), " 09", "\\t09"))
    emit("time", "escaped", swap(dumps(compact(voting_time="2026-05-07 09:15:00"), 1), "09:15:00", "09:15:00." + "1" * 300 + "\\u0031" + "x"))
    emit("valid", "time", swap(dumps(compact(voting_time="2026-05-07 09:15:00"), 1), "09:15:00", "09:15:00." + "1" * 300 + "\\u0031"))
    emit("valid", "time", swap(dumps(compact(voting_time="2026-05-07T09:15:00Z"), 1), "09:15:00Z", "09:15:00." + "9" * 500 + "Z"))
    emit("time", "order", dumps(compact(voting_time="never", vote=0)))

    # ---- vote -----------------------------------------------------------------------
    for v in ["0", "2", "-1", "-0", "9223372036854775807", "-9223372036854775808", "11", "100"]:
        emit("vote", "value", swap(dumps(compact(vote=1), 1), '"vote":1', '"vote":' + v))
    emit("vote", "value", swap(dumps(full(), 0), '"vote": 1', '"vote": 0'))

    for old in os.listdir(HERE):
        if old.endswith(".json"):
            os.remove(os.path.join(HERE, old))
    for name, data in sorted(files.items()):
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
    print("wrote %d messages" % len(files))


if __name__ == "__main__":
    main()
