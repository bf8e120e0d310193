from tasks.deploy_record import DeployRecord, Workload, newer_than

SERVER = Workload("Deployment", "server", "prod")
AGENT = Workload("Deployment", "grafana-agent", "prod")


def test_no_stamp_never_blocks():
    assert newer_than([DeployRecord(SERVER, "abc", 10)], None) is None


def test_newest_newer_record_wins():
    records = [DeployRecord(SERVER, "b", 20), DeployRecord(AGENT, "c", 30)]
    assert newer_than(records, 15) == records[1]
    assert newer_than(records, 30) is None
    assert newer_than([DeployRecord(SERVER, "legacy", None)], 1) is None


def test_target_is_kubectl_style():
    assert SERVER.target == "deployment/server"
