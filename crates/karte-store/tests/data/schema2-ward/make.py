# Writes a ward with the previous release's `karte` (schema 2) for the schema-3 migration test.
import base64, hmac, hashlib, os, struct, subprocess, sys, time, json, shutil
K = sys.argv[1]  # the previous release's karte binary
D = sys.argv[2]  # an empty directory for the ward
shutil.rmtree(D, ignore_errors=True); os.makedirs(D)
PW = "ward-pass-2026"
env0 = dict(os.environ, KARTE_DATA_DIR=D, KARTE_SETTINGS=D + "/settings.toml", KARTE_KEYRING="keyutils",
            KARTE_WORKSTATION="ward3-ws07")
secrets = {}
last = {}
def totp(user):
    key = base64.b32decode(secrets[user] + "=" * (-len(secrets[user]) % 8))
    while True:
        step = int(time.time()) // 30
        if last.get(user) != step and (int(time.time()) % 30) < 27:
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
enrol(run(["admin", "init", "--user", "admin"], extra=dict(KARTE_NEW_PASSWORD=PW)), "admin")
enrol(run(["admin", "user", "add", "dr.sato", "--role", "physician"], "admin"), "dr.sato")
enrol(run(["admin", "user", "add", "ns.suzuki", "--role", "nurse"], "admin"), "ns.suzuki")
ids = []
for patient, text in [
    ("P-0001", "65歳男性。3日前から発熱と咳嗽あり、昨日から呼吸困難も出現。BT 38.6℃、SpO2 93%（室内気）。右下肺野で湿性ラ音を聴取。CRP 12.3mg/dL。市中肺炎を疑う。胸部X線を施行予定。"),
    ("P-0002", "78歳女性。2日前から排尿時痛と頻尿。BT 37.9℃。尿混濁あり。膀胱炎を疑う。尿培養を提出する。"),
    ("P-0003", "45歳男性。口渇と多尿、嘔吐。血糖 486mg/dL。糖尿病性ケトアシドーシスを疑う。補液を開始する。"),
]:
    out = run(["draft", "-", "--no-llm", "--save", "--patient", patient], "dr.sato", stdin=text)
    ids.append(out.split()[-1])
# E1: reviewed, signed, amended. E2: edited (typed with short headers), signed. E3: left as a draft.
run(["review", ids[0], "--suggestion", "1", "--accept"], "ns.suzuki")
run(["sign", ids[0]], "dr.sato")
run(["amend", ids[0], "--reason", "体温の誤記"], "dr.sato",
    stdin="S（主観的情報）\n3日前から発熱と咳嗽あり。\nO（客観的情報）\nBT 38.4℃、SpO2 93%。\nA（評価）\n市中肺炎を疑う。\nP（計画）\n胸部X線を施行予定。\n")
run(["edit", ids[1]], "dr.sato", stdin="S）排尿時痛と頻尿。\nO）BT 37.9℃。尿混濁あり。\nA）膀胱炎疑い。\nP）尿培養。\n")
run(["sign", ids[1]], "dr.sato")
print(run(["audit", "verify"], "admin"))
store_id = open(D + "/store-id").read().strip()
json.dump({"ids": ids, "store_id": store_id, "secrets": secrets}, open(D + "/../meta.json", "w"))
print(ids, store_id)
