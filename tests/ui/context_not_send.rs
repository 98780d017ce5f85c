use std::rc::Rc;

use flow::prelude::*;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Order {
    pub id: u32,
}

/// Holds an `Rc`, so it cannot move between threads.
pub struct Shop {
    pub log: Rc<Vec<String>>,
}

#[flow::machine]
pub mod checkout {
    use super::*;

    #[state(start, to(ship))]
    async fn validate(_cx: &mut Shop, order: Order) -> Result<Validate> {
        goto!(ship(order))
    }

    #[state(end)]
    async fn ship(_cx: &mut Shop, order: Order) -> Result<u32> {
        Ok(order.id)
    }
}

fn main() {}
