//! An agent loop: plan → act → reflect, iterating the way LLM agents do until the goal is met,
//! or until the loop guard stops it.
//!
//! ```sh
//! cargo run --example agent_loop
//! ```
//!
//! The "model" and its search tool are simulated, deterministically. `reflect` goes back to `act`
//! while the plan has steps left and back to `plan` when it runs out without an answer. The first
//! question is answered on the second plan; the second never is, so `plan`'s `max_visits = 3` ends
//! the run with `RunError::MaxVisits` instead of looping (and spending) forever.

use std::collections::{BTreeMap, VecDeque};

use flow::RunError;
use flow::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Goal {
    pub question: String,
    /// The facts an answer needs.
    pub needs: Vec<String>,
}

/// A plan being carried out: the searches still to run, next first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Steps {
    pub goal: Goal,
    /// (the fact needed, the query to find it)
    pub queries: VecDeque<(String, String)>,
}

#[derive(Debug)]
pub struct Answer {
    pub question: String,
    pub facts: BTreeMap<String, String>,
    pub tool_calls: u32,
}

/// A simulated search tool over a fixed index.
pub struct Search {
    pub index: Vec<(&'static str, &'static str)>,
    pub calls: u32,
}

impl Search {
    fn query(&mut self, query: &str) -> Option<String> {
        self.calls += 1;
        let hit = self.index.iter().find(|(key, _)| *key == query);
        hit.map(|(_, text)| text.to_string())
    }
}

/// The agent's working memory, shared by every state.
pub struct Agent {
    pub search: Search,
    /// What the agent has found so far, by the fact it needed.
    pub facts: BTreeMap<String, String>,
    pub plans: u32,
}

impl Agent {
    fn missing<'a>(&self, goal: &'a Goal) -> Vec<&'a String> {
        goal.needs.iter().filter(|need| !self.facts.contains_key(*need)).collect()
    }
}

#[flow::machine]
pub mod agent {
    use super::*;

    // A plan costs a model call: three is plenty for a question this size.
    #[state(start, to(act), max_visits = 3)]
    async fn plan(cx: &mut Agent, goal: Goal) -> Result<Plan> {
        cx.plans += 1;
        // The "model" rephrases its queries on every replan, as a real one would after a miss.
        let suffix = ["", " wikipedia", " official site"][(cx.plans as usize - 1).min(2)];
        let queries: VecDeque<_> = cx
            .missing(&goal)
            .into_iter()
            .map(|need| (need.clone(), format!("{need}{suffix}")))
            .collect();
        let shown: Vec<_> = queries.iter().map(|(_, query)| query).collect();
        println!("  plan, round {}: search {shown:?}", cx.plans);
        goto!(act(Steps { goal, queries }))
    }

    #[state(to(reflect))]
    async fn act(cx: &mut Agent, mut steps: Steps) -> Result<Act> {
        if let Some((need, query)) = steps.queries.pop_front() {
            match cx.search.query(&query) {
                Some(text) => {
                    println!("  act: search({query:?}) → {text:?}");
                    cx.facts.insert(need, text);
                }
                None => println!("  act: search({query:?}) → no results"),
            }
        }
        goto!(reflect(steps))
    }

    #[state(to(act, plan, finish))]
    async fn reflect(cx: &mut Agent, steps: Steps) -> Result<Reflect> {
        let missing = cx.missing(&steps.goal);
        if missing.is_empty() {
            println!("  reflect: every fact found, answer");
            return goto!(finish(steps.goal));
        }
        if !steps.queries.is_empty() {
            println!("  reflect: still missing {missing:?}, next step");
            return goto!(act(steps));
        }
        println!("  reflect: plan done, still missing {missing:?}, replan");
        goto!(plan(steps.goal))
    }

    #[state(end)]
    async fn finish(cx: &mut Agent, goal: Goal) -> Result<Answer> {
        let facts = std::mem::take(&mut cx.facts);
        Ok(Answer { question: goal.question, facts, tool_calls: cx.search.calls })
    }
}

#[tokio::main]
async fn main() {
    let goals = [
        Goal {
            question: "How tall is the Eiffel Tower, and when did it open?".into(),
            needs: vec!["eiffel tower height".into(), "eiffel tower opening".into()],
        },
        Goal {
            question: "How many people will visit the Eiffel Tower in 2100?".into(),
            needs: vec!["eiffel tower visitors 2100".into()],
        },
    ];
    for goal in goals {
        println!("== {} ==", goal.question);
        let mut agent = Agent {
            search: Search {
                index: vec![
                    ("eiffel tower height", "330 m including antennas"),
                    ("eiffel tower opening wikipedia", "opened 31 March 1889"),
                ],
                calls: 0,
            },
            facts: BTreeMap::new(),
            plans: 0,
        };
        match agent::run(goal, &mut agent).await {
            Ok(done) => {
                let answer = done.output;
                println!("outcome: answered with {} tool call(s)", answer.tool_calls);
                for (need, fact) in &answer.facts {
                    println!("  {need}: {fact}");
                }
                println!("history:");
                for entry in &done.history {
                    println!("  {entry}");
                }
            }
            Err(error @ RunError::MaxVisits { .. }) => {
                println!("outcome: stopped by the loop guard: {error}");
                println!("history:");
                for entry in error.history() {
                    println!("  {entry}");
                }
            }
            Err(error) => println!("failed: {error}"),
        }
        println!();
    }
}
