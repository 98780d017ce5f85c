use flow::prelude::*;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Order {
    pub id: u32,
}

pub struct Shop;

#[flow::machine(max_steps = 10, max_steps = 20)]
pub mod checkout {
    use super::*;

    #[state(start, to(ship), retry(attempts = 3, backoff = "1s", attempts = 5))]
    async fn validate(_cx: &mut Shop, order: Order) -> Result<Validate> {
        goto!(ship(order))
    }

    #[state(end)]
    async fn ship(_cx: &mut Shop, order: Order) -> Result<u32> {
        Ok(order.id)
    }
}

fn main() {}
