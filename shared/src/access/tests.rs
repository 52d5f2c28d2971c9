use super::*;

fn claimed(platform_claim: bool) -> Verified {
    Verified {
        identity: Identity {
            user_id: UserId::new_random(),
            claimed_clinic: None,
            platform_claim,
        },
        clinic: ClinicId::new_random(),
        expires_at: 0,
    }
}

fn standing(role: Role, active: bool, operator: bool, archived: bool) -> Standing {
    Standing {
        user: Some(UserStanding {
            role,
            active,
            operator,
        }),
        clinic: Some(ClinicStanding { archived }),
    }
}

#[test]
fn the_database_decides_the_role_and_whether_the_caller_is_let_in() {
    // Whatever an older token's `role` claim said, the membership's role is the one used.
    let token = claimed(false);
    let admitted = judge(&token, standing(Role::Receptionist, true, false, false)).unwrap();
    assert_eq!(admitted.role, Role::Receptionist);
    assert_eq!(
        (admitted.user_id, admitted.clinic_id),
        (token.identity.user_id, token.clinic)
    );
    assert!(matches!(
        judge(&token, standing(Role::Admin, false, false, false)),
        Err(ApiError::UserDeactivated)
    ));
    assert!(matches!(
        judge(&token, standing(Role::Admin, true, false, true)),
        Err(ApiError::ClinicArchived)
    ));
    let outsider = Standing {
        user: None,
        clinic: Some(ClinicStanding { archived: false }),
    };
    assert!(matches!(judge(&token, outsider), Err(ApiError::NotAMember)));
    let no_clinic = Standing {
        clinic: None,
        ..standing(Role::Admin, true, false, false)
    };
    assert!(matches!(
        judge(&token, no_clinic),
        Err(ApiError::NotAMember)
    ));
}

#[test]
fn platform_power_needs_the_claim_the_operator_row_and_the_admin_role() {
    let is_platform = |claim, role, operator| {
        judge(&claimed(claim), standing(role, true, operator, false))
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
fn a_cached_standing_needs_both_entries_and_remembers_a_refusal() {
    let user = br#"{"role":"dentist","active":true,"operator":false}"#.as_slice();
    let clinic = br#"{"archived":false}"#.as_slice();
    assert_eq!(
        Standing::from_cache(Some(user), Some(clinic)),
        Some(standing(Role::Dentist, true, false, false))
    );
    assert_eq!(
        Standing::from_cache(Some(b"null"), Some(clinic)),
        Some(Standing {
            user: None,
            clinic: Some(ClinicStanding { archived: false })
        })
    );
    assert_eq!(Standing::from_cache(Some(user), None), None);
    assert_eq!(Standing::from_cache(None, Some(clinic)), None);
    assert_eq!(Standing::from_cache(Some(b"{"), Some(clinic)), None);
}
