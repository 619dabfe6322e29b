//! A ticket's state as callers read it: an email lock whose time is up reads
//! `active` although the stored row still says `locked`.

use chrono::Duration;
use mockall::predicate::eq;
use tessera_domain::{PageRequest, TicketState};

use crate::model::{Page, TicketView};
use crate::service::test_support::*;
use crate::usecases::TicketUseCases;

fn locked_until(offset_seconds: i64) -> TicketView {
    let mut view = ticket_view(&program());
    view.ticket.state = TicketState::Locked;
    view.ticket.locked_until = Some(now() + Duration::seconds(offset_seconds));
    view
}

#[test]
fn get_and_list_show_a_live_lock_as_locked_and_an_expired_one_as_active() {
    let live = locked_until(1);
    let expired = locked_until(0);
    let mut h = Harness::new();
    for view in [&live, &expired] {
        let returned = view.clone();
        h.tickets
            .expect_get()
            .with(eq(tenant()), eq(view.ticket.id.clone()))
            .returning(move |_, _| Ok(returned.clone()));
    }
    let page = Page {
        items: vec![live.clone(), expired.clone()],
        total: 2,
    };
    h.tickets
        .expect_list()
        .returning(move |_, _, _| Ok(page.clone()));
    let app = h.build();

    let state = |view: &TicketView| {
        app.get_ticket(&admin(), &view.ticket.id)
            .unwrap()
            .ticket
            .state
    };
    assert_eq!(state(&live), TicketState::Locked);
    assert_eq!(state(&expired), TicketState::Active);
    let listed = app
        .list_tickets(&admin(), &program().id, PageRequest::default())
        .unwrap();
    let states: Vec<_> = listed.items.iter().map(|view| view.ticket.state).collect();
    assert_eq!(states, [TicketState::Locked, TicketState::Active]);
}
