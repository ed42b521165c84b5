# Writes a ward with the previous release's `karte` (schema 3) for the schema-4 migration test (clinical dates).
# Run under `keyctl session - python3 make.py KARTE_BINARY OUT_DIR`. libfaketime shifts the binary's clock so that
# every note is saved just after midnight in Japan (00:30 JST on 2026-12-01 = 15:30 UTC on 2026-11-30): the day
# the migration must give them is the JST one, not the UTC one.
import base64, calendar, hmac, hashlib, os, struct, subprocess, sys, time, shutil
K = sys.argv[1]  # the previous release's karte binary (schema 3)
D = sys.argv[2]  # the ward's directory (emptied first)
shutil.rmtree(D, ignore_errors=True); os.makedirs(D)
PW = "ward-pass-2026"
TARGET = calendar.timegm((2026, 11, 30, 15, 30, 0))
OFFSET = TARGET - int(time.time())  # the binary's clock = real clock + OFFSET
env0 = dict(os.environ, KARTE_DATA_DIR=D, KARTE_SETTINGS=D + "/settings.toml", KARTE_KEYRING="keyutils",
            KARTE_WORKSTATION="ward5-ws02", LD_PRELOAD="/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
            FAKETIME="%+ds" % OFFSET, DONT_FAKE_MONOTONIC="1", TZ="UTC")
secrets = {}
last = {}
def now():
    return time.time() + OFFSET
def totp(user):
    key = base64.b32decode(secrets[user] + "=" * (-len(secrets[user]) % 8))
    while True:
        step = int(now()) // 30
        if last.get(user) != step and (int(now()) % 30) < 27:
            break
        time.sleep(1)
    last[user] = step
    h = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    o = h[-1] & 15
    return "%06d" % ((struct.unpack(">I", h[o:o+4])[0] & 0x7fffffff) % 1000000)
def run(args, user=None, stdin=None, extra=None):
    env = dict(env0)
    if user:
        env.update(KARTE_PASSWORD=PW, KARTE_TOTP=totp(user), KARTE_NEW_PASSWORD=PW)
        args = args + ["--user", user]
    if extra: env.update(extra)
    p = subprocess.run([K] + args, input=stdin, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"FAILED {args}: {p.stdout} {p.stderr}")
    return p.stdout
def enrol(out, name):
    uri = [l for l in out.splitlines() if l.startswith("otpauth://")][0]
    secrets[name] = uri.split("secret=")[1].split("&")[0]
def keyring(user):
    kid = subprocess.run(["keyctl", "search", "@s", "user", f"keyring-rs:{user}@karte"], capture_output=True,
                         text=True, check=True).stdout.strip()
    return subprocess.run(["keyctl", "pipe", kid], capture_output=True, text=True, check=True).stdout.strip()
enrol(run(["admin", "init", "--user", "admin"], extra=dict(KARTE_NEW_PASSWORD=PW)), "admin")
enrol(run(["admin", "user", "add", "dr.sato", "--role", "physician"], "admin"), "dr.sato")
enrol(run(["admin", "user", "add", "ns.suzuki", "--role", "nurse"], "admin"), "ns.suzuki")
ids = []
for patient, text in [
    ("P-0101", "72歳女性。昨夜から発熱と咳嗽。BT 38.2℃、SpO2 95%。肺炎を疑う。胸部X線を施行予定。"),
    ("P-0101", "本日も発熱持続。BT 37.8℃。CRP 8.1mg/dL。抗菌薬を継続する。"),
    ("P-0101", "解熱傾向。BT 36.9℃。退院を検討する。"),
    ("P-0102", "58歳男性。胸痛。心電図で異常なし。経過観察とする。"),
]:
    out = run(["draft", "-", "--no-llm", "--save", "--patient", patient], "dr.sato", stdin=text)
    ids.append(out.split()[-1])
# E1: signed. E2: signed, then amended. E3: an unsigned draft. E4 (another patient): reviewed, signed.
run(["sign", ids[0]], "dr.sato")
run(["sign", ids[1]], "dr.sato")
run(["amend", ids[1], "--reason", "CRP の誤記"], "dr.sato",
    stdin="S（主観的情報）\n本日も発熱持続。\nO（客観的情報）\nBT 37.8℃。CRP 6.1mg/dL。\nA（評価）\n肺炎。\nP（計画）\n抗菌薬を継続する。\n")
run(["review", ids[3], "--suggestion", "1", "--accept"], "ns.suzuki")
run(["sign", ids[3]], "dr.sato")
print(run(["audit", "verify"], "admin"))
store_id = open(D + "/store-id").read().strip()
with open(D + "/keyring.txt", "w") as f:
    f.write(f"db-key={keyring('db-key:' + store_id)}\n")
    f.write(f"audit-head={keyring('audit-head:' + store_id)}\n")
    f.write(f"ids={','.join(ids)}\n")
    for user, secret in secrets.items():
        f.write(f"totp-{user}={secret}\n")
# Each process checkpoints its WAL when it closes the store, so karte.db is whole; a -wal file left would not be.
assert not os.path.exists(D + "/karte.db-wal"), "WAL not checkpointed"
for f in os.listdir(D):
    if f not in ("karte.db", "store-id", "keyring.txt"):
        p = os.path.join(D, f)
        shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
print(ids, store_id)
