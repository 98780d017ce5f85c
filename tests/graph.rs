//! The static graph of the `checkout` example: states, edges, start, ends, policies, and its
//! Mermaid and DOT renderings.

use std::time::Duration;

use flow::{Backoff, Jitter, Machine, OnFailure, Policy, RetryPolicy};

#[allow(dead_code)]
#[path = "../examples/checkout.rs"]
mod example;

use example::checkout;

#[test]
fn checkout_graph_edge_by_edge() {
    let graph = checkout::graph();
    assert_eq!(graph.name, "checkout");
    assert!(std::ptr::eq(graph, checkout::Machine::graph()));
    let names: Vec<_> = graph.states.iter().map(|s| s.name).collect();
    assert_eq!(names, ["validate", "charge", "ship", "reject"]);
    assert_eq!(graph.edges, [("validate", "charge"), ("validate", "reject"), ("charge", "ship")]);
    assert_eq!(graph.start().name, "validate");
    assert_eq!(graph.ends().map(|s| s.name).collect::<Vec<_>>(), ["ship", "reject"]);
    assert_eq!(graph.targets("validate").collect::<Vec<_>>(), ["charge", "reject"]);
    assert_eq!(graph.targets("ship").count(), 0);

    let validate = graph.state("validate").unwrap();
    assert_eq!(validate.payload, [("order", "Order")]);
    assert_eq!(validate.output, None);
    assert_eq!(validate.policy, Policy::DEFAULT);
    let reject = graph.state("reject").unwrap();
    assert_eq!(reject.payload, [("order", "u32"), ("reason", "String")]);
    assert_eq!(reject.output, Some("Receipt"));

    let charge = graph.state("charge").unwrap();
    let ms = Duration::from_millis;
    assert_eq!(
        charge.policy,
        Policy {
            retry: RetryPolicy {
                attempts: 5,
                backoff: Backoff { base: ms(20), cap: ms(200), jitter: Jitter::Full }
            },
            timeout: Some(Duration::from_secs(1)),
            max_visits: None,
            wait: None,
            on_failure: OnFailure::Fail,
            uses: &[],
        }
    );
    assert_eq!(charge.compensate, Some("refund"));
    assert_eq!(validate.compensate, None);
    assert_eq!(graph.max_steps, 10_000);
}

#[test]
fn checkout_mermaid() {
    assert_eq!(
        checkout::graph().to_mermaid(),
        "stateDiagram-v2
    charge : charge (5 attempts, timeout 1s, undone by refund)
    [*] --> validate
    validate --> charge
    validate --> reject
    charge --> ship
    ship --> [*]
    reject --> [*]
"
    );
}

#[test]
fn checkout_dot() {
    assert_eq!(
        checkout::graph().to_dot(),
        "digraph checkout {
    rankdir=LR;
    node [shape=box, style=rounded];
    __start [shape=point];
    validate;
    charge [label=\"charge\\n5 attempts, timeout 1s, undone by refund\"];
    ship [peripheries=2];
    reject [peripheries=2];
    __start -> validate;
    validate -> charge;
    validate -> reject;
    charge -> ship;
}
"
    );
}
