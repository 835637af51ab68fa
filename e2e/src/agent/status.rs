//! Pod status as a kubelet reports it, built from what the agent knows about
//! its processes. Pure: the supervisor keeps the runtime facts, this module
//! turns them into `PodStatus` (phase, conditions, container states).

use std::net::Ipv4Addr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, Pod,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

/// The API stores times with second precision; so do we, so that a status read
/// back compares equal to the one written.
pub fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).expect("current time is in range")
}

#[derive(Debug, Clone, PartialEq)]
pub struct Termination {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub container_id: Option<String>,
}

impl Termination {
    /// Reason as a kubelet words it: Completed, Error, OOMKilled...
    pub fn reason_for(exit_code: i32) -> &'static str {
        if exit_code == 0 { "Completed" } else { "Error" }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Waiting { reason: String, message: Option<String> },
    Running { started_at: Timestamp },
    Terminated(Termination),
}

impl State {
    pub fn waiting(reason: &str, message: impl Into<Option<String>>) -> Self {
        State::Waiting { reason: reason.to_string(), message: message.into() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRuntime {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: Option<String>,
    pub state: State,
    pub last_termination: Option<Termination>,
    pub restart_count: i32,
    pub ready: bool,
    pub started: bool,
}

impl ContainerRuntime {
    pub fn new(name: &str, image: &str, state: State) -> Self {
        Self {
            name: name.to_string(),
            image: image.to_string(),
            image_id: String::new(),
            container_id: None,
            state,
            last_termination: None,
            restart_count: 0,
            ready: false,
            started: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PodRuntime {
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: Ipv4Addr,
    pub start_time: Timestamp,
    pub init_containers: Vec<ContainerRuntime>,
    pub containers: Vec<ContainerRuntime>,
}

fn termination_status(t: &Termination) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: t.started_at.map(Time),
        finished_at: Some(Time(t.finished_at)),
        container_id: t.container_id.clone(),
    }
}

fn container_status(c: &ContainerRuntime) -> ContainerStatus {
    let state = match &c.state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting { reason: Some(reason.clone()), message: message.clone() }),
            ..Default::default()
        },
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning { started_at: Some(Time(*started_at)) }),
            ..Default::default()
        },
        State::Terminated(t) => ContainerState { terminated: Some(termination_status(t)), ..Default::default() },
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        container_id: c.container_id.clone(),
        ready: c.ready,
        started: Some(c.started),
        restart_count: c.restart_count,
        state: Some(state),
        last_state: Some(ContainerState {
            terminated: c.last_termination.as_ref().map(termination_status),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The kubelet's getPhase, for containers that are never "unknown".
pub fn phase(restart_policy: &str, rt: &PodRuntime) -> &'static str {
    let init_done = rt.init_containers.iter().all(|c| matches!(&c.state, State::Terminated(t) if t.exit_code == 0));
    if !init_done {
        let failed_for_good = restart_policy == "Never"
            && rt.init_containers.iter().any(|c| matches!(&c.state, State::Terminated(t) if t.exit_code != 0));
        return if failed_for_good { "Failed" } else { "Pending" };
    }
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &rt.containers {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            // A container waiting to be restarted has run before: it counts
            // as stopped, which keeps a crash-looping pod Running.
            State::Waiting { .. } if c.last_termination.is_some() => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 || rt.containers.is_empty() {
        "Pending"
    } else if running > 0 || restart_policy == "Always" {
        "Running"
    } else if stopped == succeeded {
        "Succeeded"
    } else if restart_policy == "Never" {
        "Failed"
    } else {
        "Running"
    }
}

/// Keep a condition's transition time while its status does not change.
fn condition(
    previous: &[PodCondition],
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: if ok { None } else { reason.map(str::to_string) },
        message: if ok { None } else { message },
        last_transition_time: Some(since),
        last_probe_time: None,
        ..Default::default()
    }
}

/// `previous` is the last status written (or read): condition transition
/// times and conditions owned by others are carried over from it.
pub fn build(pod: &Pod, previous: Option<&PodStatus>, rt: &PodRuntime, now: Timestamp) -> PodStatus {
    let previous = previous.or(pod.status.as_ref()).and_then(|s| s.conditions.clone()).unwrap_or_default();
    let spec = pod.spec.as_ref();
    let restart_policy = spec.and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");

    let initialized = rt.init_containers.iter().all(|c| matches!(&c.state, State::Terminated(t) if t.exit_code == 0));
    let uninitialized: Vec<&str> = rt
        .init_containers
        .iter()
        .filter(|c| !matches!(&c.state, State::Terminated(t) if t.exit_code == 0))
        .map(|c| c.name.as_str())
        .collect();
    let unready: Vec<&str> = rt.containers.iter().filter(|c| !c.ready).map(|c| c.name.as_str()).collect();
    let containers_ready = unready.is_empty() && initialized;
    let unready_message = format!("containers with unready status: [{}]", unready.join(" "));

    // Readiness gates are set by other controllers; Ready waits for them.
    let gates_open = spec
        .and_then(|s| s.readiness_gates.as_ref())
        .map(|gates| gates.iter().all(|g| previous.iter().any(|c| c.type_ == g.condition_type && c.status == "True")))
        .unwrap_or(true);

    let mut conditions = vec![
        condition(
            &previous,
            "Initialized",
            initialized,
            Some("ContainersNotInitialized"),
            Some(format!("containers with incomplete status: [{}]", uninitialized.join(" "))),
            now,
        ),
        condition(
            &previous,
            "Ready",
            containers_ready && gates_open,
            Some(if containers_ready { "ReadinessGatesNotReady" } else { "ContainersNotReady" }),
            Some(if containers_ready {
                "the status of pod readiness gates is not \"True\"".to_string()
            } else {
                unready_message.clone()
            }),
            now,
        ),
        condition(
            &previous,
            "ContainersReady",
            containers_ready,
            Some("ContainersNotReady"),
            Some(unready_message),
            now,
        ),
        condition(&previous, "PodScheduled", true, None, None, now),
    ];
    // Conditions owned by others (readiness gates, disruption targets) stay.
    let ours = ["Initialized", "Ready", "ContainersReady", "PodScheduled"];
    conditions.extend(previous.iter().filter(|c| !ours.contains(&c.type_.as_str())).cloned());

    PodStatus {
        phase: Some(phase(restart_policy, rt).to_string()),
        conditions: Some(conditions),
        host_ip: Some(rt.host_ip.to_string()),
        pod_ip: rt.pod_ip.map(|ip| ip.to_string()),
        pod_ips: rt.pod_ip.map(|ip| vec![PodIP { ip: ip.to_string() }]),
        start_time: Some(Time(rt.start_time)),
        container_statuses: Some(rt.containers.iter().map(container_status).collect()),
        init_container_statuses: if rt.init_containers.is_empty() {
            None
        } else {
            Some(rt.init_containers.iter().map(container_status).collect())
        },
        qos_class: pod.status.as_ref().and_then(|s| s.qos_class.clone()),
        ..Default::default()
    }
}

fn state_summary(s: Option<&ContainerState>) -> Value {
    let Some(s) = s else { return Value::Null };
    if let Some(w) = &s.waiting {
        json!(["waiting", w.reason, w.message])
    } else if let Some(r) = &s.running {
        json!(["running", r.started_at.as_ref().map(|t| t.0.as_second())])
    } else if let Some(t) = &s.terminated {
        json!(["terminated", t.exit_code, t.reason])
    } else {
        Value::Null
    }
}

/// The parts of a status this agent owns, in a form that survives a round
/// trip through an older API server (which drops fields it does not know).
/// Equal summaries mean there is nothing to patch.
pub fn summary(status: Option<&PodStatus>) -> Value {
    let Some(s) = status else { return Value::Null };
    let containers = |list: &Option<Vec<ContainerStatus>>| -> Value {
        list.iter()
            .flatten()
            .map(|c| {
                json!([
                    c.name,
                    c.ready,
                    c.started,
                    c.restart_count,
                    c.container_id,
                    state_summary(c.state.as_ref()),
                    state_summary(c.last_state.as_ref()),
                ])
            })
            .collect()
    };
    let mut conditions: Vec<Value> = s
        .conditions
        .iter()
        .flatten()
        .filter(|c| ["Initialized", "Ready", "ContainersReady", "PodScheduled"].contains(&c.type_.as_str()))
        .map(|c| json!([c.type_, c.status, c.reason]))
        .collect();
    conditions.sort_by_key(|v| v.to_string());
    json!({
        "phase": s.phase,
        "podIP": s.pod_ip,
        "hostIP": s.host_ip,
        "startTime": s.start_time.as_ref().map(|t| t.0.as_second()),
        "conditions": conditions,
        "containers": containers(&s.container_statuses),
        "initContainers": containers(&s.init_container_statuses),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn pod(policy: &str) -> Pod {
        Pod { spec: Some(PodSpec { restart_policy: Some(policy.into()), ..Default::default() }), ..Default::default() }
    }

    fn runtime(state: State, ready: bool) -> PodRuntime {
        let mut c = ContainerRuntime::new("mariadb", "mariadb:10.11", state);
        c.ready = ready;
        PodRuntime {
            pod_ip: Some(Ipv4Addr::new(127, 0, 0, 10)),
            host_ip: Ipv4Addr::LOCALHOST,
            start_time: t(0),
            init_containers: vec![],
            containers: vec![c],
        }
    }

    fn exited(code: i32) -> Termination {
        Termination {
            exit_code: code,
            signal: None,
            reason: Termination::reason_for(code).into(),
            message: None,
            started_at: Some(t(1)),
            finished_at: t(2),
            container_id: Some("mariadbd://42".into()),
        }
    }

    #[test]
    fn phases_follow_the_kubelet() {
        let waiting = State::waiting("UnsupportedImage", Some("no".to_string()));
        assert_eq!(phase("Always", &runtime(waiting.clone(), false)), "Pending");
        assert_eq!(phase("Always", &runtime(State::Running { started_at: t(1) }, true)), "Running");

        let mut crashloop = runtime(State::waiting("CrashLoopBackOff", None), false);
        crashloop.containers[0].last_termination = Some(exited(1));
        assert_eq!(phase("Always", &crashloop), "Running");

        assert_eq!(phase("Never", &runtime(State::Terminated(exited(0)), false)), "Succeeded");
        assert_eq!(phase("Never", &runtime(State::Terminated(exited(1)), false)), "Failed");
        assert_eq!(phase("OnFailure", &runtime(State::Terminated(exited(0)), false)), "Succeeded");

        let mut init = runtime(State::waiting("PodInitializing", None), false);
        init.init_containers = vec![ContainerRuntime::new("init", "busybox", waiting)];
        assert_eq!(phase("Always", &init), "Pending");
    }

    #[test]
    fn ready_conditions_and_addresses() {
        let status = build(&pod("Always"), None, &runtime(State::Running { started_at: t(1) }, true), t(5));
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("127.0.0.10"));
        assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(status.pod_ips.as_ref().unwrap()[0].ip, "127.0.0.10");
        let cond =
            |s: &PodStatus, ty: &str| s.conditions.as_ref().unwrap().iter().find(|c| c.type_ == ty).unwrap().clone();
        for ty in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            assert_eq!(cond(&status, ty).status, "True", "{ty}");
        }
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready);
        assert!(cs.state.as_ref().unwrap().running.is_some());

        // Going NotReady records a new transition; staying keeps the old time.
        let mut p = pod("Always");
        p.status = Some(status);
        let unready = build(&p, None, &runtime(State::Running { started_at: t(1) }, false), t(9));
        let ready = cond(&unready, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(ready.message.as_deref(), Some("containers with unready status: [mariadb]"));
        assert_eq!(ready.last_transition_time, Some(Time(t(9))));
        assert_eq!(cond(&unready, "PodScheduled").last_transition_time, Some(Time(t(5))));
    }

    #[test]
    fn restarts_show_last_state_and_count() {
        let mut rt = runtime(State::Running { started_at: t(3) }, false);
        rt.containers[0].restart_count = 2;
        rt.containers[0].last_termination = Some(Termination { exit_code: 137, signal: Some(9), ..exited(137) });
        let status = build(&pod("Always"), None, &rt, t(4));
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.restart_count, 2);
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(last.exit_code, 137);
        assert_eq!(last.reason.as_deref(), Some("Error"));
    }

    #[test]
    fn summary_ignores_what_it_does_not_own() {
        let rt = runtime(State::Running { started_at: t(1) }, true);
        let a = build(&pod("Always"), None, &rt, t(5));
        let mut b = a.clone();
        b.qos_class = Some("BestEffort".into());
        b.host_ips = None;
        assert_eq!(summary(Some(&a)), summary(Some(&b)));
        b.container_statuses.as_mut().unwrap()[0].ready = false;
        assert_ne!(summary(Some(&a)), summary(Some(&b)));
    }
}
