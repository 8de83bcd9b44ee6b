"""Static checks of infrastructure/providers/azure: tags, network, identity, bootstrap.

Terraform's azurerm provider cannot be downloaded here, so nothing is planned or applied;
the module is parsed (python-hcl2) and its cloud-init script rendered and syntax-checked.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from cloudbench.platform.tls import TLS_NAME
from tests.infra.test_terraform_static import (
    INFRA,
    SAMPLE_TOKEN,
    _bash_syntax_ok,
    _module,
    _one,
    _resources,
    _templatefile_args,
    _templatefile_keys,
    render_template,
)

MODULE = INFRA / "providers" / "azure"
TEMPLATE = "runner-cloud-init.sh.tftpl"
# azurerm resources that carry tags (associations, subnets and role objects do not).
TAGGABLE = {
    "azurerm_resource_group",
    "azurerm_virtual_network",
    "azurerm_public_ip",
    "azurerm_nat_gateway",
    "azurerm_network_security_group",
    "azurerm_key_vault",
    "azurerm_user_assigned_identity",
    "azurerm_key_vault_secret",
    "azurerm_network_interface",
    "azurerm_linux_virtual_machine",
}
RUNNER_VARS = {
    "max_lifetime_minutes": 90,
    "orchestrator_url": "https://bench.example.org",
    "vault_uri": "https://cb-abc123def456.vault.azure.net/",
    "secret_name": "runner-token",
    "identity_client_id": "0b4c8a8e-5f7e-4d1e-9a61-3c2b1a0f9e8d",
    "run_id": "r42",
    "alias": "cobalt100",
    "debug": "false",
    "heartbeat_interval": 30,
    # A domain name: its ACME certificate, the system's CAs (no pinned certificate).
    "tls_cert": "",
    "tls_name": TLS_NAME,
    # --ruby-bench: the suite the master stored with the run at the orchestrator.
    "ruby_bench_sha256": "3f" * 32,
    # What the runner imports, pinned to the master's lock (its x64 entry).
    "runner_requirements": "httpx==0.28.1\nidna==3.20",
}


def _locals() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in _module(MODULE)["locals"]:
        merged.update(block)
    return merged


def _of_type(rtype: str) -> list[dict[str, Any]]:
    return [body for t, _, body in _resources(MODULE) if t == rtype]


def _render() -> str:
    text = (MODULE / "templates" / TEMPLATE).read_text(encoding="utf-8")
    return render_template(text, RUNNER_VARS)


def test_every_taggable_resource_carries_the_run_tags() -> None:
    assert _one(_locals()["tags"]) == {
        "Project": "cloudbench",
        "RunId": "${var.run_id}",
        "Stack": "providers/azure",
    }
    seen = set()
    for rtype, name, body in _resources(MODULE):
        if rtype not in TAGGABLE:
            continue
        seen.add(rtype)
        tags = str(_one(body.get("tags", "")))
        # Either the common tags or a merge that starts from them (so ours always win).
        assert tags in ("${local.tags}",) or tags.startswith("${merge(local.tags,"), (
            f"{rtype}.{name} is not tagged with local.tags: {tags!r}"
        )
    assert seen == TAGGABLE


def test_one_resource_group_per_run() -> None:
    groups = _of_type("azurerm_resource_group")
    assert len(groups) == 1
    assert _one(_locals()["name"]) == "cloudbench-${var.run_id}"
    assert _one(groups[0]["name"]) == "${local.name}"


def test_no_inbound_traffic_except_ssh_from_the_configured_cidr() -> None:
    nsg = _one(_of_type("azurerm_network_security_group"))
    static = [_one(r) for r in nsg.get("security_rule", [])]
    # The only static rule denies everything inbound, above Azure's default allow rules.
    assert len(static) == 1
    deny = static[0]
    assert _one(deny["access"]) == "Deny" and _one(deny["direction"]) == "Inbound"
    assert _one(deny["source_address_prefix"]) == "*" and int(_one(deny["priority"])) < 65000
    dynamic = _one(_one(nsg["dynamic"])["security_rule"])
    for_each = str(_one(dynamic["for_each"]))
    # No rule at all when no CIDR is configured (parsers quote the list differently).
    assert for_each.startswith('${var.ssh_cidr == "" ? [] : ['), for_each
    ssh = _one(dynamic["content"])
    assert _one(ssh["destination_port_range"]) == "22"
    assert _one(ssh["access"]) == "Allow"
    assert _one(ssh["source_address_prefix"]) == "${security_rule.value}"
    variables = {n: b for blk in _module(MODULE)["variable"] for n, b in blk.items()}
    assert _one(variables["ssh_cidr"]["default"]) == ""
    assert "0.0.0.0/0" in str(variables["ssh_cidr"]["validation"])
    # Runners have no public address: nothing but the NAT gateway's IP exists.
    assert len(_of_type("azurerm_public_ip")) == 1
    nic = _one(_of_type("azurerm_network_interface"))
    assert "public_ip_address_id" not in _one(nic["ip_configuration"])


def test_vms_are_hardened_and_pick_the_image_by_api_architecture() -> None:
    vm = _one(_of_type("azurerm_linux_virtual_machine"))
    assert _one(vm["disable_password_authentication"]) is True
    assert "admin_password" not in vm
    assert _one(vm["allow_extension_operations"]) is False
    assert _one(vm["boot_diagnostics"]) == {} or "boot_diagnostics" in vm
    assert _one(_one(vm["identity"])["type"]) == "UserAssigned"
    disk = _one(vm["os_disk"])
    assert _one(disk["storage_account_type"]) == (
        '${each.value.premium_io ? "Premium_LRS" : "StandardSSD_LRS"}'
    )
    image = _one(vm["source_image_reference"])
    assert _one(image["publisher"]) == "Canonical"
    assert "24_04-lts" in _one(image["offer"])
    sku = _one(image["sku"])
    assert sku.startswith("${local.image_sku[each.value.gen2 || each.value.architecture")
    assert "x64-gen1" in sku
    assert _one(_locals()["image_sku"]) == {
        "x64": "server",
        "Arm64": "server-arm64",
        "x64-gen1": "server-gen1",
    }
    # The architecture is an input from the API (validated), not derived from the size name.
    variables = {n: b for blk in _module(MODULE)["variable"] for n, b in blk.items()}
    validations = str(variables["instance_types"]["validation"])
    assert "x64" in validations and "Arm64" in validations
    assert "instance_type" not in str(_one(_locals()["image_sku"]))


def test_nvme_only_sizes_get_their_disk_controller() -> None:
    """Standard_D2pls_v6 (the README's example) is NVMe-only: a VM with the default SCSI
    controller is refused. The controller is an API fact passed in, SCSI by default."""
    vm = _one(_of_type("azurerm_linux_virtual_machine"))
    assert _one(vm["disk_controller_type"]) == "${each.value.disk_controller_type}"
    variables = {n: b for blk in _module(MODULE)["variable"] for n, b in blk.items()}
    shape = str(variables["instance_types"]["type"])
    assert "disk_controller_type" in shape and "SCSI" in shape
    validations = str(variables["instance_types"]["validation"])
    assert '["SCSI", "NVMe"]' in validations or "['SCSI', 'NVMe']" in validations


def test_the_resource_providers_it_uses_are_registered() -> None:
    """A fresh subscription has them unregistered and azurerm said nothing of why."""
    provider = _one(_one(_module(MODULE)["provider"])["azurerm"])
    assert _one(provider["resource_provider_registrations"]) == "none"
    registered = set(_one(provider["resource_providers_to_register"]))
    namespace = {
        "azurerm_linux_virtual_machine": "Microsoft.Compute",
        "azurerm_key_vault": "Microsoft.KeyVault",
        "azurerm_key_vault_secret": "Microsoft.KeyVault",
        "azurerm_user_assigned_identity": "Microsoft.ManagedIdentity",
        "azurerm_virtual_network": "Microsoft.Network",
        "azurerm_subnet": "Microsoft.Network",
        "azurerm_network_interface": "Microsoft.Network",
        "azurerm_public_ip": "Microsoft.Network",
        "azurerm_nat_gateway": "Microsoft.Network",
        "azurerm_network_security_group": "Microsoft.Network",
    }
    used = {namespace[t] for t, _, _ in _resources(MODULE) if t in namespace}
    assert (
        used
        == registered
        == {
            "Microsoft.Compute",
            "Microsoft.KeyVault",
            "Microsoft.ManagedIdentity",
            "Microsoft.Network",
        }
    )


def test_the_token_is_in_key_vault_readable_only_by_the_run_identity() -> None:
    secret = _one(_of_type("azurerm_key_vault_secret"))
    assert _one(secret["value"]) == "${var.runner_token}"
    vault = _one(_of_type("azurerm_key_vault"))
    policies = [_one(p) for p in vault["access_policy"]]
    runner = [p for p in policies if "user_assigned_identity.runner" in str(p["object_id"])]
    assert len(runner) == 1 and _one(runner[0]["secret_permissions"]) == "Get"
    args = _templatefile_args(MODULE / "main.tf", TEMPLATE)
    assert "runner_token" not in args.replace("azurerm_key_vault_secret.runner_token.name", "")
    for _, _, body in _resources(MODULE):
        assert "var.runner_token" not in str(body.get("tags", ""))
    text = (MODULE / "templates" / TEMPLATE).read_text(encoding="utf-8")
    script = render_template(text, {**RUNNER_VARS, "runner_token": SAMPLE_TOKEN})
    assert SAMPLE_TOKEN not in script


def test_cloud_init_renders_and_bootstraps_the_runner() -> None:
    assert _templatefile_keys(MODULE / "main.tf", TEMPLATE) == set(RUNNER_VARS)
    script = _render()
    _bash_syntax_ok(script)
    # Custom data is base64 of the script; Azure caps it at 64 KiB after encoding.
    assert len(base64.b64encode(script.encode())) < 65536
    commands = [ln for ln in script.splitlines() if ln.strip() and not ln.startswith("#")]
    lifetime = next(i for i, ln in enumerate(commands) if "--on-active=90m" in ln)
    first_fallible = next(i for i, ln in enumerate(commands) if ln.startswith("set -e"))
    assert lifetime < first_fallible, "the hard lifetime must come before anything can fail"
    assert any(ln.startswith("shutdown -h +$((90 + 10))") for ln in commands)
    assert "ORCHESTRATOR='https://bench.example.org'" in script
    assert '"${PIP_TLS[@]}" --find-links "$ORCHESTRATOR/dist/" cloudbench' in script
    assert 'export CLOUDBENCH_ORCHESTRATOR_URL="$ORCHESTRATOR"' in script
    # pip takes plain HTTP from a non-local host only when it is a trusted host (booted
    # against such an orchestrator in tests/twin/test_azure_boot.py).
    assert 'PIP_TLS=(--trusted-host "$${ORCHESTRATOR_HOST%:*}")'.replace("$$", "$") in script
    joined = script.replace("\\\n", " ")
    assert re.search(r'cloudbench" runner .*--shutdown-on-done', joined)
    assert "export CLOUDBENCH_PROVIDER='azure'" in script
    assert "export CLOUDBENCH_ALIAS='cobalt100'" in script
    assert '--instance-type "$CLOUDBENCH_INSTANCE_TYPE"' in joined
    # The master's pins: pip installs exactly those beside the wheel, resolving nothing.
    assert "RUNNER_REQUIREMENTS='httpx==0.28.1\nidna==3.20'" in script
    assert "--no-deps /opt/cloudbench/wheel/*.whl -r /opt/cloudbench/runner-requirements.txt" in (
        " ".join(joined.split())
    )


def test_the_master_pins_the_runners_dependencies_per_architecture() -> None:
    (vm,) = [b for t, _, b in _resources(MODULE) if t == "azurerm_linux_virtual_machine"]
    expr = str(vm["custom_data"])
    assert "lookup(var.runner_requirements,each.value.architecture," in expr.replace(" ", "")


def test_the_shipped_suite_comes_from_the_orchestrator_checked_before_unpacking() -> None:
    script = _render()
    joined = script.replace("\\\n", " ")
    fetch = next(ln for ln in joined.splitlines() if '"$ORCHESTRATOR/ruby-bench/$RUN_ID"' in ln)
    # The runner token on curl's stdin (-K -), never in argv or the URL.
    assert "-K -" in fetch and "TOKEN" not in fetch.split("|")[-1], fetch
    assert f"RUBY_BENCH_SHA256='{'3f' * 32}'" in script
    check = script.index('if [ "$GOT" != "$RUBY_BENCH_SHA256" ]; then')
    unpack = script.index("tar -xzf /opt/cloudbench/ruby-bench.tar.gz")
    assert script.index("sha256sum /opt/cloudbench/ruby-bench.tar.gz") < check < unpack
    assert script.index("export CLOUDBENCH_RUBY_BENCH=/opt/cloudbench/ruby-bench") > unpack
    assert unpack < script.index('"$VENV/bin/cloudbench" runner')
    assert "git clone" not in script


def test_cloud_init_asks_imds_with_the_metadata_header() -> None:
    script = _render()
    imds_calls = [ln for ln in script.splitlines() if "169.254.169.254" in ln]
    assert imds_calls
    # Every IMDS request (curl or urllib) sends Metadata: true, or IMDS refuses it.
    for line in script.splitlines():
        if "curl" in line and "Metadata" not in line and "management.azure.com" not in line:
            nxt = script.splitlines()[script.splitlines().index(line) + 1]
            assert "169.254.169.254" not in line + nxt, line
    assert 'headers={"Metadata": "true"}' in script
    assert "compute vmSize" in script and "compute zone" in script
    assert 'resource": "https://vault.azure.net"' in script
    assert "0b4c8a8e-5f7e-4d1e-9a61-3c2b1a0f9e8d" in script  # the run identity, not another


def test_every_end_of_life_deallocates_instead_of_only_powering_off() -> None:
    script = _render()
    assert "/deallocate?api-version=" in script
    assert "ExecStop=/usr/local/sbin/cloudbench-deallocate" in script
    assert "trap finish EXIT" in script
    finish = script[script.index("finish() {") : script.index("trap finish EXIT")]
    assert finish.rstrip().endswith("/usr/local/sbin/cloudbench-deallocate done\n}")
    role = _one(_of_type("azurerm_role_definition"))
    actions = _one(_one(role["permissions"])["actions"])
    assert set(actions) == {
        "Microsoft.Compute/virtualMachines/read",
        "Microsoft.Compute/virtualMachines/deallocate/action",
    }


def test_module_path_exists() -> None:
    assert isinstance(MODULE, Path) and (MODULE / "templates" / TEMPLATE).is_file()


def test_boot_stages_are_reported_once_the_token_is_read_before_apt() -> None:
    """Issue 23: the token comes from Key Vault with the standard library, so the first
    report goes out before any package is installed; curl gets the token on stdin."""
    script = _render()
    token = script.index('TOKEN="$(python3 -')
    first_report = script.index("report boot ")
    assert token < first_report < script.index("apt-get update")
    assert 'curl -sS -f --max-time 15 --retry 3 --retry-connrefused "${CURL_TLS[@]}" -K -' in script
    assert '"$ORCHESTRATOR/runs/$RUN_ID/machines"' in script
    assert 'INSTANCE_ID="$(compute name)"' in script and '"provider": "azure"' in script
    assert "for dev in /dev/ttyS0 /dev/console" in script
    _bash_syntax_ok(script)


def test_launch_vms_false_applies_everything_but_the_vms() -> None:
    """Issue 25 item 9: the master applies the stack first without VMs, admits its NAT
    address at the orchestrator, then applies the VMs (master/providers/allowlist.py)."""
    gated = {"azurerm_network_interface", "azurerm_linux_virtual_machine"}
    for rtype, _, body in _resources(MODULE):
        mentions = "var.launch_vms" in str(body.get("for_each", ""))
        assert mentions == (rtype in gated), rtype
    assert "nat_public_ip" in {name for block in _module(MODULE)["output"] for name in block}
