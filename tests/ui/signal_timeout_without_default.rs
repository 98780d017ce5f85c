use flow::prelude::*;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Decision {
    Approve,
    Reject,
}

pub struct Desk;

#[flow::machine]
pub mod approval {
    use super::*;

    #[state(start, to(publish, escalate), signal(timeout = "3d"))]
    async fn review(_cx: &mut Desk, doc: String, #[signal] decision: Decision) -> Result<Review> {
        match decision {
            Decision::Approve => goto!(publish(doc)),
            Decision::Reject => goto!(escalate(doc)),
        }
    }

    #[state(end)]
    async fn publish(_cx: &mut Desk, doc: String) -> Result<String> {
        Ok(doc)
    }

    #[state(end)]
    async fn escalate(_cx: &mut Desk, doc: String) -> Result<String> {
        Ok(doc)
    }
}

fn main() {}
