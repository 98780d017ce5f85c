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
        // The branches in the wrong order.
        fork!(reserve(2), pay(cents))
    }

    #[state(branch_end)]
    async fn pay(_cx: &mut Shop, cents: u64) -> Result<Receipt> {
        Ok(Receipt { cents })
    }

    #[state(branch_end)]
    async fn reserve(_cx: &mut Shop, items: u32) -> Result<Reservation> {
        Ok(Reservation { items })
    }

    #[state(end)]
    async fn ship(_cx: &mut Shop, receipt: Receipt, reservation: Reservation) -> Result<String> {
        Ok(format!("{} {}", reservation.items, receipt.cents))
    }
}

fn main() {}
