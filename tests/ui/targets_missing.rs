use flow::prelude::*;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Order {
    pub id: u32,
}

pub struct Shop;

#[flow::machine]
pub mod checkout {
    use super::*;

    // `to(ship)` is missing: one error, naming what the body goes to.
    #[state(start)]
    async fn validate(_cx: &mut Shop, order: Order) -> Result<Validate> {
        check(&order)?;
        goto!(ship(order))
    }

    // Called only by a state: still no "never used" warning while the machine has errors.
    fn check(order: &Order) -> Result<()> {
        let _ = order.id;
        Ok(())
    }

    #[state(end)]
    async fn ship(_cx: &mut Shop, order: Order) -> Result<u32> {
        Ok(order.id)
    }
}

fn main() {}
