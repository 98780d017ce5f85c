use flow::prelude::*;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    pub cents: u64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Reservation {
    pub items: u32,
}

#[derive(Debug, Clone, Default)]
pub struct Shop;

#[flow::machine]
pub mod order {
    use super::*;

    #[state(start, fork(pay, reserve), join = ship)]
    async fn split(_cx: &mut Shop, cents: u64) -> Result<Split> {
        fork!(pay(cents), reserve(2))
    }

    #[state(branch_end)]
    async fn pay(_cx: &mut Shop, cents: u64) -> Result<Receipt> {
        Ok(Receipt { cents })
    }

    #[state(branch_end)]
    async fn reserve(_cx: &mut Shop, items: u32) -> Result<Reservation> {
        Ok(Reservation { items })
    }

    // The branches end with a receipt, then a reservation: the join takes them the other way.
    #[state(end)]
    async fn ship(_cx: &mut Shop, reservation: Reservation, receipt: Receipt) -> Result<String> {
        Ok(format!("{} {}", reservation.items, receipt.cents))
    }
}

fn main() {}
