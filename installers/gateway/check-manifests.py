"""Consistency checks of the gateway example that a schema cannot make (README "Gateway deployment").

Run: python3 check-manifests.py installers/gateway   (needs PyYAML). Schema checks are separate:
  check-jsonschema --builtin-schema vendor.compose-spec compose.yaml ; kubernetes-validate --strict k8s.yaml
"""
import sys, tomllib, yaml
d = sys.argv[1]
toml_text = open(f"{d}/karte-gateway.toml").read()
tomllib.loads(toml_text)
c = yaml.safe_load(open(f"{d}/compose.yaml"))
assert set(c["services"]) == {"vllm", "karte-server"}, c["services"].keys()
ks = c["services"]["karte-server"]
assert "/health" in " ".join(ks["healthcheck"]["test"])
assert "./karte-gateway.toml:/etc/karte/settings.toml:ro" in ks["volumes"]
assert c["services"]["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
docs = [x for x in yaml.safe_load_all(open(f"{d}/k8s.yaml")) if x]
kinds = [(x["kind"], x["metadata"]["name"]) for x in docs]
print(kinds)
cm = next(x for x in docs if x["kind"] == "ConfigMap")
assert cm["data"]["settings.toml"] == toml_text, "ConfigMap settings.toml differs from karte-gateway.toml"
for dep in (x for x in docs if x["kind"] == "Deployment"):
    sel = dep["spec"]["selector"]["matchLabels"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in sel.items()), dep["metadata"]["name"]
    for ctr in dep["spec"]["template"]["spec"]["containers"]:
        assert "readinessProbe" in ctr and "livenessProbe" in ctr, ctr["name"]
        assert "requests" in ctr["resources"], ctr["name"]
ksrv = next(x for x in docs if x["kind"] == "Deployment" and x["metadata"]["name"] == "karte-server")
ctr = ksrv["spec"]["template"]["spec"]["containers"][0]
assert ctr["readinessProbe"]["httpGet"]["path"] == "/health"
assert ctr["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
for svc in (x for x in docs if x["kind"] == "Service"):
    dep = next(x for x in docs if x["kind"] == "Deployment" and x["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"])
    ports = {p["name"] for c2 in dep["spec"]["template"]["spec"]["containers"] for p in c2["ports"]}
    assert all(p["targetPort"] in ports for p in svc["spec"]["ports"]), svc["metadata"]["name"]
print("ok: compose.yaml, k8s.yaml parse; ConfigMap == karte-gateway.toml; selectors, probes, ports consistent")
