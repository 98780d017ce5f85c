use flow::prelude::*;

/// Not serde: a run waiting for it could not be checkpointed.
#[derive(Debug, Clone)]
pub struct Decision {
    pub approved: bool,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Desk;

#[flow::machine]
pub mod approval {
    use super::*;

    #[state(start, to(publish))]
    async fn review(_cx: &mut Desk, doc: String, #[signal] decision: Decision) -> Result<Review> {
        let _ = decision.approved;
        goto!(publish(doc))
    }

    #[state(end)]
    async fn publish(_cx: &mut Desk, doc: String) -> Result<String> {
        Ok(doc)
    }
}

fn main() {}
