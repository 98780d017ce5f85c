use flow::prelude::*;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Order {
    pub id: u32,
}

pub struct Shop;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Approval {
    pub ok: bool,
}

#[flow::machine]
pub mod checkout {
    use super::*;

    #[state(start, to(ship), signal(timeout = "1d", default = ship))]
    async fn validate(_cx: &mut Shop, #[signal] approval: Approval, order: Order) -> Result<Validate> {
        let _ = approval;
        goto!(ship(order))
    }

    #[state(end)]
    async fn ship(_cx: &mut Shop, order: Order) -> Result<u32> {
        Ok(order.id)
    }
}

fn main() {}
