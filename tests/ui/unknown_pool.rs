use flow::prelude::*;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Order {
    pub id: u32,
}

pub struct Shop;

#[flow::machine(pools(gpu, api))]
pub mod checkout {
    use super::*;

    #[state(start, to(ship), uses(gpus = 1))]
    async fn validate(_cx: &mut Shop, order: Order) -> Result<Validate> {
        goto!(ship(order))
    }

    #[state(end)]
    async fn ship(_cx: &mut Shop, order: Order) -> Result<u32> {
        Ok(order.id)
    }
}

fn main() {}
