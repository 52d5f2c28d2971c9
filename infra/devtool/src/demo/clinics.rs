//! The two demo clinics of one chain and their staff, under the readable fixed ids of
//! `fixed_id`. One dentist works at both: Lucía Fernández at Sonrisa from Monday to Wednesday
//! and at Alameda on Thursday and Friday, one person with two memberships. The chain's
//! management is Isabel Navarro Prieto, its organization admin: on no clinic's staff, she reads
//! both clinics and their dashboards together.

use chrono::Weekday;
use shared::auth::Role;
use uuid::Uuid;

pub struct DemoClinic {
    pub id: Uuid,
    pub slug: &'static str,
    pub name: &'static str,
    pub city: &'static str,
    pub address: &'static str,
    pub phone: &'static str,
    pub staff: Vec<StaffMember>,
}

impl DemoClinic {
    /// The ids of its staff members who have `role`, in staff order.
    pub fn staff_ids(&self, role: Role) -> Vec<Uuid> {
        self.staff_with(role).map(|s| s.id).collect()
    }

    /// Its staff members who have `role`, in staff order.
    pub fn staff_with(&self, role: Role) -> impl Iterator<Item = &StaffMember> {
        self.staff.iter().filter(move |s| s.role == role)
    }
}

pub struct StaffMember {
    pub id: Uuid,
    pub full_name: &'static str,
    pub email: String,
    pub role: Role,
    /// The days they work at this clinic.
    pub weekdays: &'static [Weekday],
}

const MONDAY_TO_FRIDAY: &[Weekday] = &[
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
];
const MONDAY_TO_WEDNESDAY: &[Weekday] = &[Weekday::Mon, Weekday::Tue, Weekday::Wed];
const THURSDAY_AND_FRIDAY: &[Weekday] = &[Weekday::Thu, Weekday::Fri];

/// The chain's organization admin (`org_admin` of the demo organization), id `fixed_id(0, 1)`.
pub struct OrganizationAdmin {
    pub id: Uuid,
    pub full_name: &'static str,
    pub email: &'static str,
}

pub fn organization_admin() -> OrganizationAdmin {
    OrganizationAdmin {
        id: fixed_id(0, 1),
        full_name: "Isabel Navarro Prieto",
        email: "isabel.navarro@grupo-pulso.pulso.test",
    }
}

/// Readable fixed ids: clinic n is `d3e00000-0000-4000-8000-000000000n00`, its staff `…n01`–`…n05`.
pub fn fixed_id(clinic: u128, member: u128) -> Uuid {
    Uuid::from_u128(0xd3e0_0000_0000_4000_8000_0000_0000_0000 | (clinic << 8) | member)
}

pub fn clinics() -> Vec<DemoClinic> {
    let clinic = |n: u128,
                  (slug, name, city, address, phone),
                  staff: [(&'static str, &'static str, Role); 5]| DemoClinic {
        id: fixed_id(n, 0),
        slug,
        name,
        city,
        address,
        phone,
        staff: staff
            .into_iter()
            .zip(1..)
            .map(|((full_name, login, role), member)| StaffMember {
                id: fixed_id(n, member),
                full_name,
                email: format!("{login}@{slug}.pulso.test"),
                role,
                weekdays: MONDAY_TO_FRIDAY,
            })
            .collect(),
    };
    let mut clinics = vec![
        clinic(
            1,
            (
                "sonrisa",
                "Clínica Dental Sonrisa",
                "Madrid",
                "Calle de Alcalá 120, 28009 Madrid",
                "+34914352780",
            ),
            [
                ("Ana López Serrano", "ana.lopez", Role::Admin),
                ("Lucía Fernández Ruiz", "lucia.fernandez", Role::Dentist),
                ("Javier Moreno Gil", "javier.moreno", Role::Dentist),
                ("Carmen Ortega Vidal", "carmen.ortega", Role::Receptionist),
                ("Pablo Sánchez Navarro", "pablo.sanchez", Role::Receptionist),
            ],
        ),
        clinic(
            2,
            (
                "alameda",
                "Centro Dental Alameda",
                "Sevilla",
                "Alameda de Hércules 32, 41002 Sevilla",
                "+34954901245",
            ),
            [
                (
                    "Miguel Ángel Romero Díaz",
                    "miguelangel.romero",
                    Role::Admin,
                ),
                ("Elena Castro Márquez", "elena.castro", Role::Dentist),
                ("Álvaro Núñez Peña", "alvaro.nunez", Role::Dentist),
                ("Rocío Jiménez Vega", "rocio.jimenez", Role::Receptionist),
                ("Manuel Muñoz Torres", "manuel.munoz", Role::Receptionist),
            ],
        ),
    ];
    // Lucía Fernández works at both clinics: the same person (id and email), two memberships.
    let shared_dentist = &mut clinics[0].staff[1];
    shared_dentist.weekdays = MONDAY_TO_WEDNESDAY;
    let at_alameda = StaffMember {
        id: shared_dentist.id,
        full_name: shared_dentist.full_name,
        email: shared_dentist.email.clone(),
        role: Role::Dentist,
        weekdays: THURSDAY_AND_FRIDAY,
    };
    clinics[1].staff.push(at_alameda);
    clinics
}
