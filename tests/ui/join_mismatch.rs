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

    // `pay` ends with a `Receipt`, but the join takes a number for it.
    #[state(end)]
    async fn ship(_cx: &mut Shop, receipt: u64, reservation: Reservation) -> Result<String> {
        Ok(format!("{} {}", reservation.items, receipt))
    }
}

fn main() {}
