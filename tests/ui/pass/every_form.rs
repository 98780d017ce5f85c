// Every DSL form in one machine, as a user would write it: compiles without a warning.
use flow::prelude::*;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Doc {
    pub text: String,
}

pub struct Desk {
    pub reviews: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("store offline")]
pub struct Offline;

#[flow::machine(max_steps = 500, name = "publishing", pools(editors, api), priority = -2)]
pub mod publishing {
    use super::*;

    // Several payload arguments, branching to three targets.
    #[state(start, to(draft, review, archive))]
    async fn intake(_cx: &mut Desk, doc: Doc, urgent: bool, tags: Vec<String>) -> Result<Intake> {
        match (urgent, tags.is_empty()) {
            (true, _) => goto!(review(doc)),
            (false, true) => goto!(archive),
            (false, false) => goto!(draft(doc, 0)),
        }
    }

    // A self-loop, with a policy on every key.
    #[state(to(draft, review), retry(attempts = 3, backoff = "1s", jitter = "equal"), timeout = "1h30m", max_visits = 20, uses(editors = 2, api))]
    async fn draft(_cx: &mut Desk, mut doc: Doc, round: u8) -> Result<Draft> {
        doc.text.push('.');
        if round < 3 {
            return goto!(draft(doc, round + 1));
        }
        goto!(review(doc))
    }

    // A back-edge to an earlier state; a user error type through `?`; a compensation; a
    // fallback taking the failure.
    #[state(to(draft, publish), retry(attempts = 2), compensate = withdraw, fallback = shelve)]
    async fn review(cx: &mut Desk, doc: Doc) -> Result<Review> {
        cx.reviews += 1;
        if cx.reviews > 100 {
            Err(Offline)?;
        }
        if doc.text.len() < 10 {
            return goto!(draft(doc, 0));
        }
        goto!(publish(doc.text))
    }

    // Undoes a review: the context and the state's payload.
    async fn withdraw(cx: &mut Desk, _doc: Doc) -> Result<()> {
        cx.reviews -= 1;
        Ok(())
    }

    // A pause for an operator when its attempt fails.
    #[state(end, on_failure = pause)]
    async fn publish(_cx: &mut Desk, text: String) -> Result<usize> {
        Ok(text.len())
    }

    #[state(end)]
    async fn shelve(_cx: &mut Desk, failure: flow::Caught) -> Result<usize> {
        Ok(failure.attempts.len())
    }

    // No payload at all.
    #[state(end)]
    async fn archive(_cx: &mut Desk) -> Result<usize> {
        Ok(0)
    }
}

fn main() {
    let mut desk = Desk { reviews: 0 };
    let _run = publishing::run((Doc { text: String::new() }, false, Vec::new()), &mut desk);
    let _graph: &flow::Graph = publishing::graph();
    let _state = publishing::State::Archive;
}
