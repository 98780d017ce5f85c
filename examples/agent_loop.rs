//! An agent loop: plan → act → reflect, iterating the way LLM agents do, until the goal is met
//! or the loop guard stops it.
//!
//! ```sh
//! cargo run --example agent_loop
//! ```
//!
//! The "model" and the "tool" are simulated deterministically. The first goal is reached on the
//! second plan; the second never converges, so `plan`'s `max_visits = 3` ends the run with an
//! error that names the state, instead of looping (and spending) forever.

use flow::RunError;
use flow::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Goal {
    pub text: String,
    /// The sum the agent must reach with its tool calls.
    pub target: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Steps {
    pub goal: Goal,
    pub steps: Vec<i64>,
}

/// What the agent has done so far: its scratchpad.
#[derive(Default)]
pub struct Agent {
    pub total: i64,
    pub tool_calls: u32,
    pub transcript: Vec<String>,
}

impl Agent {
    fn note(&mut self, line: String) {
        println!("  {line}");
        self.transcript.push(line);
    }
}

#[flow::machine]
pub mod agent {
    use super::*;

    #[state(start, to(act), max_visits = 3)]
    async fn plan(cx: &mut Agent, goal: Goal) -> Result<Plan> {
        // A "model" that plans up to two steps of at most 5 towards the target; for an odd
        // target it can only think in steps of 2, so it never lands on it.
        let missing = goal.target - cx.total;
        let steps = if goal.target % 2 == 0 {
            let first = missing.clamp(-5, 5);
            vec![first, (missing - first).clamp(-5, 5)]
        } else {
            vec![2, 2]
        };
        cx.note(format!("plan: {missing} to go, try {steps:?}"));
        goto!(act(Steps { goal, steps }))
    }

    #[state(to(act, reflect), retry(attempts = 2))]
    async fn act(cx: &mut Agent, mut plan: Steps) -> Result<Act> {
        let Some(step) = plan.steps.pop() else { return goto!(reflect(plan.goal)) };
        cx.tool_calls += 1;
        cx.total += step;
        cx.note(format!("act: tool call {} adds {step}, total {}", cx.tool_calls, cx.total));
        goto!(act(plan))
    }

    #[state(to(plan, finish))]
    async fn reflect(cx: &mut Agent, goal: Goal) -> Result<Reflect> {
        if cx.total == goal.target {
            cx.note(format!("reflect: reached {} for {:?}", cx.total, goal.text));
            return goto!(finish(goal));
        }
        cx.note(format!("reflect: {} is not {}, plan again", cx.total, goal.target));
        goto!(plan(goal))
    }

    #[state(end)]
    async fn finish(cx: &mut Agent, goal: Goal) -> Result<String> {
        Ok(format!("{}: done in {} tool calls", goal.text, cx.tool_calls))
    }
}

#[tokio::main]
async fn main() {
    for (text, target) in [("reach 16", 16), ("reach 7 with steps of 2", 7)] {
        println!("goal {text:?}:");
        let mut agent = Agent::default();
        let goal = Goal { text: text.into(), target };
        match agent::run(goal, &mut agent).await {
            Ok(done) => {
                println!("  => {}", done.output);
                let path: Vec<_> = done.history.iter().map(|entry| entry.state).collect();
                println!("  path: {}", path.join(" → "));
            }
            Err(error @ RunError::MaxVisits { .. }) => {
                println!("  => stopped by the loop guard: {error}");
                println!("  ({} attempts before the guard)", error.history().len());
            }
            Err(error) => println!("  => failed: {error}"),
        }
        println!();
    }
}
