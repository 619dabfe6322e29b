use crate::ports::StoreError;
use crate::service::test_support::Harness;
use crate::usecases::HealthUseCases;
use crate::AppError;

#[test]
fn ready_is_ok_when_the_database_answers() {
    let mut h = Harness::new();
    h.health.expect_ping().times(1).returning(|| Ok(()));
    assert_eq!(h.build().ready(), Ok(()));
}

#[test]
fn ready_is_unavailable_whatever_way_the_database_fails() {
    for error in [
        StoreError::Unavailable("connection refused".to_owned()),
        StoreError::Internal("pool poisoned".to_owned()),
    ] {
        let mut h = Harness::new();
        h.health
            .expect_ping()
            .times(1)
            .returning(move || Err(error.clone()));
        assert_eq!(h.build().ready(), Err(AppError::Unavailable));
    }
}
