use flow::prelude::*;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Order {
    pub id: u32,
}

pub struct Shop;

#[flow::machine]
pub mod checkout {
    use super::*;

    #[state(start, to(charge_2, charge2))]
    async fn validate(_cx: &mut Shop, order: Order) -> Result<Validate> {
        goto!(charge_2(order))
    }

    #[state(to(ship))]
    async fn charge_2(_cx: &mut Shop, order: Order) -> Result<Charge2> {
        goto!(ship(order))
    }

    // `charge_2` and `charge2` both become `Charge2`.
    #[state(to(ship))]
    async fn charge2(_cx: &mut Shop, order: Order) -> Result<Charge2> {
        goto!(ship(order))
    }

    #[state(end)]
    async fn ship(_cx: &mut Shop, order: Order) -> Result<u32> {
        Ok(order.id)
    }
}

fn main() {}
