use flow::prelude::*;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Order {
    pub id: u32,
}

pub struct Shop;

#[flow::machine]
pub mod checkout {
    use super::*;

    #[state(start, to(ship, reject))]
    async fn validate(_cx: &mut Shop, order: Order) -> Result<Validate> {
        if order.id == 0 {
            return goto!(reject(String::from("empty")));
        }
        goto!(ship(order))
    }

    #[state(end)]
    async fn ship(_cx: &mut Shop, order: Order) -> Result<u32> {
        Ok(order.id)
    }

    #[state(end)]
    async fn reject(_cx: &mut Shop, reason: String) -> Result<String> {
        Ok(reason)
    }
}

fn main() {}
