use flow::prelude::*;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Order {
    pub id: u32,
}

pub struct Shop;

// `#[flow::machine]` is missing on the module: one error, not one per state.
pub mod checkout {
    use super::*;

    #[state(start, to(charge))]
    async fn validate(_cx: &mut Shop, order: Order) -> Result<Validate> {
        goto!(charge(order))
    }

    #[state(to(ship))]
    async fn charge(_cx: &mut Shop, order: Order) -> Result<Charge> {
        goto!(ship(order))
    }

    #[state(end)]
    async fn ship(_cx: &mut Shop, order: Order) -> Result<u32> {
        Ok(order.id)
    }
}

fn main() {}
