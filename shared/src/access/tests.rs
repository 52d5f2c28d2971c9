use super::*;

fn claimed(role: Role, platform_admin: bool) -> Principal {
    Principal {
        user_id: UserId::new_random(),
        clinic_id: ClinicId::new_random(),
        role,
        platform_admin,
    }
}

fn standing(role: Role, active: bool, operator: bool, archived: bool) -> Standing {
    Standing {
        user: UserStanding {
            role,
            active,
            operator,
        },
        clinic: ClinicStanding { archived },
    }
}

#[test]
fn the_database_decides_the_role_and_whether_the_caller_is_let_in() {
    // A token minted as admin for a user demoted to receptionist acts as a receptionist.
    let token = claimed(Role::Admin, false);
    let admitted = judge(token, standing(Role::Receptionist, true, false, false)).unwrap();
    assert_eq!(admitted.role, Role::Receptionist);
    assert_eq!(
        (admitted.user_id, admitted.clinic_id),
        (token.user_id, token.clinic_id)
    );
    assert!(matches!(
        judge(token, standing(Role::Admin, false, false, false)),
        Err(ApiError::UserDeactivated)
    ));
    assert!(matches!(
        judge(token, standing(Role::Admin, true, false, true)),
        Err(ApiError::ClinicArchived)
    ));
}

#[test]
fn platform_power_needs_the_claim_the_operator_row_and_the_admin_role() {
    let is_platform = |claim, role, operator| {
        judge(
            claimed(Role::Admin, claim),
            standing(role, true, operator, false),
        )
        .unwrap()
        .platform_admin
    };
    assert!(is_platform(true, Role::Admin, true));
    assert!(!is_platform(true, Role::Admin, false), "a claim alone");
    assert!(!is_platform(false, Role::Admin, true), "a row alone");
    assert!(
        !is_platform(true, Role::Dentist, true),
        "not an admin any more"
    );
}

#[test]
fn a_cached_standing_needs_both_entries() {
    let user = br#"{"role":"dentist","active":true,"operator":false}"#.as_slice();
    let clinic = br#"{"archived":false}"#.as_slice();
    assert_eq!(
        Standing::from_cache(Some(user), Some(clinic)),
        Some(standing(Role::Dentist, true, false, false))
    );
    assert_eq!(Standing::from_cache(Some(user), None), None);
    assert_eq!(Standing::from_cache(None, Some(clinic)), None);
    assert_eq!(Standing::from_cache(Some(b"{"), Some(clinic)), None);
}
