use flow::prelude::*;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Order {
    pub id: u32,
}

pub struct Shop;

#[flow::machine]
pub mod checkout {
    use super::*;

    #[state(start, to(ship, poll))]
    async fn validate(_cx: &mut Shop, order: Order) -> Result<Validate> {
        if order.id == 0 {
            return goto!(poll(order));
        }
        goto!(ship(order))
    }

    // Loops are fine, but this one has no way out.
    #[state(to(poll))]
    async fn poll(_cx: &mut Shop, order: Order) -> Result<Poll> {
        goto!(poll(order))
    }

    #[state(end)]
    async fn ship(_cx: &mut Shop, order: Order) -> Result<u32> {
        Ok(order.id)
    }
}

fn main() {}
