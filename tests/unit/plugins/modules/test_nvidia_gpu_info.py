# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for ailab.cluster.nvidia_gpu_info.

The module's main() runs with AnsibleModule.run_command and get_bin_path replaced by FakeHost,
which answers each nvidia-smi read with the output of a fixture (tests/unit/fixtures/nvidia: the
recorded H200 and outputs derived from it) and records every command line. One test runs the
module end to end through ansible-playbook on local hosts, with a fake nvidia-smi executable.
"""

import shlex
import subprocess

import pytest
import yaml
from ansible.module_utils import basic

from ansible_collections.ailab.cluster.plugins.module_utils import _nvidia_smi as smi
from ansible_collections.ailab.cluster.plugins.modules import nvidia_gpu_info
from unit.fixtures.nvidia import nvidia_fixtures as fixtures
from unit.roles.playbook_runner import local_inventory, run_playbook, shared_run

NVIDIA_SMI = "/usr/bin/nvidia-smi"
TIMEOUT = "/usr/bin/timeout"
NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n"
)
MISMATCH = "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 580.95\n"
BY_ARGS = {tuple(args): name for name, args in smi.COMMANDS.items()}


class FakeHost:
    """The host as the module sees it: binaries on PATH and nvidia-smi's answers by command name."""

    def __init__(self, answers, binaries=None):
        self.answers = answers
        self.binaries = {"nvidia-smi": NVIDIA_SMI, "timeout": TIMEOUT} if binaries is None else binaries
        self.calls = []
        self.warnings = []

    def get_bin_path(self, arg, required=False, opt_dirs=None):
        return self.binaries.get(arg)

    def run_command(self, args, **kwargs):
        args = list(args)
        self.calls.append(args)
        if args[0] == TIMEOUT:
            args = args[4:]
        name = BY_ARGS.get(tuple(args[1:]))
        assert name is not None, f"the module ran an unexpected command: {args}"
        assert name in self.answers, f"the module ran '{smi.command_line(name)}', which this test did not expect"
        answer = self.answers[name]
        return answer["rc"], answer["stdout"], answer["stderr"]

    def warn(self, warning):
        self.warnings.append(warning)

    @property
    def runs(self):
        return [BY_ARGS[tuple(call[5:] if call[0] == TIMEOUT else call[1:])] for call in self.calls]


@pytest.fixture
def host(monkeypatch):
    """``host(answers or fixture name, binaries=None) -> FakeHost`` installed for the next module run."""

    def install(answers, binaries=None):
        if isinstance(answers, str):
            answers = fixtures.outputs(answers)
        fake = FakeHost(answers, binaries)
        # staticmethod: the fake's bound methods stand in for the module's, without the module argument.
        for method in ("get_bin_path", "run_command", "warn"):
            monkeypatch.setattr(basic.AnsibleModule, method, staticmethod(getattr(fake, method)))
        return fake

    return install


@pytest.fixture
def gather(run_module):
    def run(args=None, check_mode=False):
        return run_module(nvidia_gpu_info, args or {}, check_mode=check_mode)

    return run


def answer(stdout="", rc=0, stderr=""):
    return {"rc": rc, "stdout": stdout, "stderr": stderr}


def with_answers(name, **changes):
    answers = fixtures.outputs(name)
    answers.update(changes)
    return answers


def placement(entry):
    return f"{entry['placement']['start']}:{entry['placement']['size']}"


def assert_matches(result, expect):
    """Compare the module result with a fixture's ``expect`` block (see the fixture README)."""
    for key in ("gpu_count", "driver_version", "cuda_version", "models"):
        if key in expect:
            assert result[key] == expect[key], key
    assert len(result["gpus"]) == len(expect["gpus"])
    for gpu, want in zip(result["gpus"], expect["gpus"]):
        for key, value in want.items():
            if key == "mig_profiles":
                got = {p["name"]: [p["id"], p["instances_free"], p["instances_total"], p["memory_gib"]] for p in gpu[key]}
                assert list(got.items()) == list(value.items())
            elif key == "gpu_instances":
                assert [[g["name"], g["profile_id"], g["id"], placement(g)] for g in gpu[key]] == value
            elif key == "compute_instances":
                assert [[c["gpu_instance_id"], c["name"], c["profile_id"], c["id"], placement(c)] for c in gpu[key]] == value
            else:
                assert gpu[key] == value, key


def failure(result, *fragments):
    assert result.get("failed"), result
    for fragment in fragments:
        assert fragment in result["msg"], result["msg"]
    return result["msg"]


class TestFixtures:
    @pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
    @pytest.mark.parametrize("name", fixtures.names())
    def test_facts(self, host, gather, name, check_mode):
        fake = host(name)
        result = gather(check_mode=check_mode)
        assert not result.get("failed"), result.get("msg")
        assert result["changed"] is False
        expect = fixtures.spec(name)["expect"]
        assert_matches(result, expect)
        assert fake.runs == expect["runs"]
        facts = {key: value for key, value in result.items() if key not in ("changed", "ansible_facts")}
        assert result["ansible_facts"] == {"nvidia_gpu": facts}
        assert facts["nvidia_smi_path"] == NVIDIA_SMI

    def test_check_mode_runs_the_same_reads(self, host, gather):
        normal = host("h200x2")
        gather()
        checked = host("h200x2")
        gather(check_mode=True)
        assert checked.calls == normal.calls
        assert len(normal.calls) == 5

    def test_the_recorded_h200(self, host, gather):
        host("h200")
        gpu = gather()["gpus"][0]
        assert gpu == dict(gpu, **{
            "index": 0, "name": "NVIDIA H200", "architecture": "Hopper", "uuid": "GPU-5b450c73-aa60-81f2-523e-df255f059bc6",
            "pci_bus_id": "00000000:00:06.0", "pci_device_id": "0x233510DE", "pci_device_id_raw": "233510DE",
            "memory_total_mib": 143771, "driver_version": "580.159.04", "cuda_version": "13.0", "compute_capability": "9.0",
            "mig_capable": True, "mig_mode": {"current": "Disabled", "pending": "Disabled"},
        })
        counts = {p["name"]: p["instances_total"] for p in gpu["mig_profiles"]}
        assert counts == {"1g.18gb": 7, "1g.18gb+me": 1, "1g.35gb": 4, "2g.35gb": 3, "3g.71gb": 2, "4g.71gb": 1, "7g.141gb": 1}


class TestOptions:
    def test_commands_run_under_timeout(self, host, gather):
        fake = host("h200")
        gather({"timeout": 15})
        assert all(call[:5] == [TIMEOUT, "-k", "5", "15", NVIDIA_SMI] for call in fake.calls)
        assert fake.calls[0][5:] == ["-q", "-x"]

    def test_timeout_zero_runs_without_a_limit(self, host, gather):
        fake = host("h200")
        gather({"timeout": 0})
        assert [call[0] for call in fake.calls] == [NVIDIA_SMI] * 3
        assert fake.warnings == []

    def test_without_coreutils_timeout(self, host, gather):
        fake = host("h200", binaries={"nvidia-smi": NVIDIA_SMI})
        assert gather()["gpu_count"] == 1
        assert [call[0] for call in fake.calls] == [NVIDIA_SMI] * 3
        assert len(fake.warnings) == 1
        assert "without a time limit" in fake.warnings[0]

    def test_explicit_nvidia_smi_path(self, host, gather, tmp_path):
        wrapper = tmp_path / "nvidia-smi-in-driver-container"
        wrapper.write_text("#!/bin/sh\nexec chroot /run/nvidia/driver nvidia-smi \"$@\"\n")
        wrapper.chmod(0o755)
        fake = host("h200", binaries={"timeout": TIMEOUT})  # no nvidia-smi on PATH
        result = gather({"nvidia_smi_path": str(wrapper)})
        assert result["nvidia_smi_path"] == str(wrapper)
        assert {call[4] for call in fake.calls} == {str(wrapper)}

    def test_mig_profiles_false_skips_lgip(self, host, gather):
        fake = host("h200-mig-enabled")
        result = gather({"mig_profiles": False})
        assert fake.runs == ["query_xml", "query_gpu", "gpu_instances", "compute_instances"]
        assert result["gpus"][0]["mig_profiles"] == []
        assert len(result["gpus"][0]["gpu_instances"]) == 4

    def test_mig_enabled_without_instances(self, host, gather):
        host(with_answers(
            "h200-mig-enabled",
            gpu_instances=answer("No GPU instances found: Not Found\n", rc=6),
            compute_instances=answer("No compute instances found: Not Found\n", rc=6),
        ))
        gpu = gather()["gpus"][0]
        assert (gpu["gpu_instances"], gpu["compute_instances"]) == ([], [])

    def test_none_message_on_stderr(self, host, gather):
        host(with_answers("h200-mig-enabled", gpu_instances=answer(stderr="No GPU instances found: Not Found\n", rc=6)))
        assert gather()["gpus"][0]["gpu_instances"] == []

    def test_lgip_says_not_supported(self, host, gather):
        """A VM or GPU where nvidia-smi reports a MIG mode but mig -lgip finds no MIG device."""
        host(with_answers("h200", mig_profiles=answer("No MIG-supported devices found.\n", rc=6)))
        assert gather()["gpus"][0]["mig_profiles"] == []

    @pytest.mark.parametrize("value", [-1, -60])
    def test_negative_timeout(self, host, gather, value):
        fake = host("h200")
        failure(gather({"timeout": value}), "timeout must be 0")
        assert fake.calls == []

    def test_unknown_option_is_refused(self, host, gather):
        host("h200")
        failure(gather({"gpu": 0}), "Unsupported parameters")


class TestNoGpu:
    def test_nvidia_smi_not_found(self, host, gather):
        fake = host({}, binaries={"timeout": TIMEOUT})
        msg = failure(gather(), "nvidia-smi not found", "install the NVIDIA driver", "GPU Operator", "fail_on_no_gpu=false")
        assert "chroot /run/nvidia/driver nvidia-smi" in msg
        assert fake.calls == []

    def test_nvidia_smi_not_found_is_zero_gpus_when_allowed(self, host, gather):
        fake = host({}, binaries={})
        result = gather({"fail_on_no_gpu": False})
        assert result == {
            "changed": False, "gpus": [], "gpu_count": 0, "driver_version": None, "cuda_version": None, "models": [],
            "nvidia_smi_path": None,
            "ansible_facts": {"nvidia_gpu": {"gpus": [], "gpu_count": 0, "driver_version": None, "cuda_version": None,
                                             "models": [], "nvidia_smi_path": None}},
        }
        assert fake.calls == []

    @pytest.mark.parametrize("where", ["stdout", "stderr"])
    def test_no_devices_were_found(self, host, gather, where):
        fake = host({"query_xml": answer(**{where: "No devices were found\n", "rc": 6})})
        failure(gather(), "nvidia-smi found no NVIDIA GPU", "No devices were found", "fail_on_no_gpu=false")
        assert fake.runs == ["query_xml"]

    def test_no_devices_when_allowed(self, host, gather):
        host({"query_xml": answer("No devices were found\n", rc=6)})
        result = gather({"fail_on_no_gpu": False})
        assert (result["gpu_count"], result["gpus"], result["nvidia_smi_path"]) == (0, [], NVIDIA_SMI)

    def test_xml_without_gpu(self, host, gather):
        xml = fixtures.outputs("h200")["query_xml"]["stdout"]
        start, end = xml.index("\t<gpu id="), xml.index("</nvidia_smi_log>")
        host({"query_xml": answer(xml[:start] + xml[end:])})
        failure(gather(), "lists no GPU", "fail_on_no_gpu=false")
        result = gather({"fail_on_no_gpu": False})
        assert (result["gpu_count"], result["driver_version"], result["cuda_version"]) == (0, "580.159.04", "13.0")


class TestFailures:
    def test_driver_not_loaded(self, host, gather):
        host({"query_xml": answer(NO_DRIVER, rc=9)})
        result = gather({"fail_on_no_gpu": False})
        failure(result, "'nvidia-smi -q -x' failed with exit status 9", "couldn't communicate with the NVIDIA driver",
                "kernel module is loaded")
        assert result["rc"] == 9
        assert result["stdout"] == NO_DRIVER

    def test_driver_library_mismatch(self, host, gather):
        host({"query_xml": answer(MISMATCH, rc=18)})
        failure(gather(), "exit status 18", "Driver/library version mismatch", "reboot after a driver upgrade")

    def test_failure_that_prints_nothing(self, host, gather):
        host({"query_xml": answer(rc=255)})
        failure(gather(), "exit status 255", "(it printed nothing)")

    def test_empty_output(self, host, gather):
        host({"query_xml": answer("")})
        failure(gather(), "nvidia-smi -q -x printed nothing")

    def test_truncated_xml(self, host, gather):
        xml = fixtures.outputs("h200")["query_xml"]["stdout"]
        host({"query_xml": answer(xml[: len(xml) // 2])})
        failure(gather(), "cannot be parsed", "check that it completes")

    def test_timeout(self, host, gather):
        host({"query_xml": answer(rc=124)})
        result = gather({"timeout": 7})
        failure(result, "'nvidia-smi -q -x' did not finish within 7 seconds", "Xid")
        assert result["rc"] == 124

    def test_killed_after_the_timeout(self, host, gather):
        host({"query_xml": answer(rc=137)})
        failure(gather(), "did not finish within 60 seconds")

    def test_rc_124_without_timeout_is_an_ordinary_failure(self, host, gather):
        host({"query_xml": answer("odd\n", rc=124)})
        failure(gather({"timeout": 0}), "failed with exit status 124", "odd")

    def test_nvidia_smi_path_not_executable(self, host, gather, tmp_path):
        plain = tmp_path / "nvidia-smi"
        plain.write_text("not a program\n")
        fake = host("h200")
        failure(gather({"nvidia_smi_path": str(plain)}), f"nvidia_smi_path {plain} is not an executable file")
        failure(gather({"nvidia_smi_path": str(tmp_path / "missing")}), "is not an executable file")
        assert fake.calls == []

    def test_query_gpu_fails_on_an_old_driver(self, host, gather):
        host(with_answers("h200", query_gpu=answer('Field "compute_cap" is not a valid field to query.\n', rc=2)))
        failure(gather(), "'nvidia-smi --query-gpu=index,pci.bus_id,compute_cap --format=csv,noheader' failed with exit status 2",
                "not a valid field", "driver 510 or later")

    def test_query_gpu_unparseable(self, host, gather):
        host(with_answers("h200", query_gpu=answer("0, 00000000:00:06.0\n")))
        failure(gather(), "line 1 of 'nvidia-smi --query-gpu")

    def test_query_gpu_disagrees_with_the_xml(self, host, gather):
        host(with_answers("h200", query_gpu=answer("0, 00000000:00:06.0, 9.0\n1, 00000000:00:07.0, 9.0\n")))
        failure(gather(), "lists 1 GPUs but", "lists 2", "run the task again")

    @pytest.mark.parametrize("name", ["mig_profiles", "gpu_instances", "compute_instances"])
    def test_mig_command_fails(self, host, gather, name):
        host(with_answers("h200-mig-enabled", **{name: answer(stderr="Insufficient Permissions\n", rc=4)}))
        failure(gather(), f"'{smi.command_line(name)}' failed with exit status 4", "Insufficient Permissions")

    @pytest.mark.parametrize("name", ["mig_profiles", "gpu_instances", "compute_instances"])
    def test_mig_table_unparseable(self, host, gather, name):
        text = fixtures.outputs("h200-mig-enabled")[name]["stdout"]
        host(with_answers("h200-mig-enabled", **{name: answer(text.replace("|   0 ", "| GPU0 "))}))
        failure(gather(), f"of '{smi.command_line(name)}' is not a row this module can read")

    def test_mig_table_names_an_unknown_gpu(self, host, gather):
        text = fixtures.outputs("h200-mig-enabled")["gpu_instances"]["stdout"]
        host(with_answers("h200-mig-enabled", gpu_instances=answer(text.replace("|   0  MIG 1g", "|   3  MIG 1g"))))
        failure(gather(), "lists GPU 3, which nvidia-smi -q -x does not list")

    def test_failures_carry_the_path(self, host, gather):
        host({"query_xml": answer(NO_DRIVER, rc=9)})
        assert gather()["nvidia_smi_path"] == NVIDIA_SMI


class TestDocumentation:
    """RETURN documents every key the module returns, and DOCUMENTATION every option."""

    @staticmethod
    def contains(doc):
        return set(doc["contains"])

    def test_return_keys(self, host, gather):
        host("h200x2")
        result = gather()
        doc = yaml.safe_load(nvidia_gpu_info.RETURN)
        assert set(doc) == set(result) - {"changed"}
        gpus = doc["gpus"]
        assert all(set(gpu) == self.contains(gpus) for gpu in result["gpus"])
        gpu = result["gpus"][1]
        for key in ("mig_profiles", "gpu_instances", "compute_instances"):
            assert gpu[key]
            assert all(set(entry) == self.contains(gpus["contains"][key]) for entry in gpu[key])
        assert set(result["ansible_facts"]["nvidia_gpu"]) == set(doc) - {"ansible_facts"}
        assert set(gpus["sample"][0]) == self.contains(gpus)

    def test_options_match_the_argument_spec(self, monkeypatch):
        captured = {}

        class Stop(Exception):
            pass

        def spy(self, argument_spec, **kwargs):
            captured.update(argument_spec)
            raise Stop

        monkeypatch.setattr(basic.AnsibleModule, "__init__", spy)
        with pytest.raises(Stop):
            nvidia_gpu_info.main()
        options = yaml.safe_load(nvidia_gpu_info.DOCUMENTATION)["options"]
        assert set(options) == set(captured)
        for name, spec in captured.items():
            assert options[name]["type"] == spec["type"], name
            assert options[name].get("default") == spec.get("default"), name


# -- end to end: ansible-playbook -c local with a fake nvidia-smi -----------------------------------

E2E_HOSTS = {
    "gpu-h200": ("h200", {}),
    "gpu-mig": ("h200-mig-enabled", {}),
    "gpu-broken": (None, {"query_xml": answer(NO_DRIVER, rc=9)}),
    "cpu-only": (None, {"query_xml": answer("No devices were found\n", rc=6)}),
}


def build_e2e(tmp):
    host_vars = {}
    for host, (name, answers) in E2E_HOSTS.items():
        directory = tmp / host
        directory.mkdir()
        fixtures.write_fake_nvidia_smi(directory, fixtures.outputs(name) if name else answers, smi.COMMANDS)
        host_vars[host] = {"fake_nvidia_smi": str(directory / "nvidia-smi"), "gpu_required": host != "cpu-only"}
    module_args = {"nvidia_smi_path": "{{ fake_nvidia_smi }}", "fail_on_no_gpu": "{{ gpu_required }}", "timeout": 30}
    plays = [{
        "name": "GPU facts",
        "hosts": "gpu_nodes",
        "gather_facts": False,
        "tasks": [
            {"name": "Read the GPUs in check mode", "ailab.cluster.nvidia_gpu_info": module_args, "check_mode": True,
             "register": "__nvidia_gpu_checked"},
            {"name": "Gather the GPU facts", "ailab.cluster.nvidia_gpu_info": module_args},
            {"name": "Show the gathered models", "ansible.builtin.debug": {"msg": "{{ ansible_facts.nvidia_gpu.models }}"}},
        ],
    }]
    return run_playbook(tmp, plays, local_inventory({"gpu_nodes": list(E2E_HOSTS)}, host_vars=host_vars))


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    return shared_run(tmp_path_factory, "nvidia-gpu-info-e2e", build_e2e)


class TestAnsiblePlaybook:
    def test_facts_in_check_mode_and_normal_mode(self, e2e):
        tmp, run = e2e
        for host, name in (("gpu-h200", "h200"), ("gpu-mig", "h200-mig-enabled")):
            checked = run.results("Read the GPUs in check mode", host)[0]
            gathered = run.results("Gather the GPU facts", host)[0]
            assert not checked.get("failed") and not gathered.get("failed"), (checked, gathered)
            assert checked["changed"] is gathered["changed"] is False
            assert_matches(gathered, fixtures.spec(name)["expect"])
            assert checked["gpus"] == gathered["gpus"]
            assert gathered["ansible_facts"]["nvidia_gpu"]["gpus"] == gathered["gpus"]
            assert run.results("Show the gathered models", host)[0]["msg"] == fixtures.spec(name)["expect"]["models"]
            calls = fixtures.calls(tmp / host)
            expected = [smi.COMMANDS[command] for command in fixtures.spec(name)["expect"]["runs"]]
            assert calls == expected + expected, "check mode must run the same reads as a normal run"

    def test_a_cpu_only_node_reports_zero_gpus(self, e2e):
        _tmp, run = e2e
        assert run.results("Gather the GPU facts", "cpu-only")[0]["gpu_count"] == 0
        assert run.results("Show the gathered models", "cpu-only")[0]["msg"] == []

    def test_a_broken_driver_fails_the_host_with_its_message(self, e2e):
        tmp, run = e2e
        msg = run.failure("gpu-broken")
        assert "couldn't communicate with the NVIDIA driver" in msg
        assert "Traceback" not in run.stdout
        assert fixtures.calls(tmp / "gpu-broken") == [smi.COMMANDS["query_xml"]]
        assert run.stats["gpu-broken"]["failures"] == 1
        assert run.rc == 2

    def test_the_fake_refuses_unknown_arguments(self, tmp_path):
        """The fake nvidia-smi is strict: a read the module does not make has no answer."""
        script = fixtures.write_fake_nvidia_smi(tmp_path, fixtures.outputs("h200"), smi.COMMANDS)
        done = subprocess.run([str(script), *shlex.split("-q -d MEMORY")], capture_output=True, text=True, check=False)
        assert done.returncode == 2
        assert "no answer recorded" in done.stderr
