use flow::prelude::*;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Order {
    pub id: u32,
}

pub struct Shop;

#[flow::machine]
pub mod checkout {
    use super::*;

    // Outside a state's body the macro cannot see the goto!; the type system still refuses it.
    fn skip_payment(order: Order) -> Result<Validate> {
        goto!(ship(order))
    }

    #[state(start, to(charge))]
    async fn validate(_cx: &mut Shop, order: Order) -> Result<Validate> {
        if order.id == 0 {
            return skip_payment(order);
        }
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
