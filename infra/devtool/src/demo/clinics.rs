//! The two demo clinics and their staff, under the readable fixed ids of `fixed_id`.

use shared::auth::Role;
use uuid::Uuid;

pub struct DemoClinic {
    pub id: Uuid,
    pub slug: &'static str,
    pub name: &'static str,
    pub city: &'static str,
    pub staff: Vec<StaffMember>,
}

impl DemoClinic {
    /// The ids of its staff members who have `role`, in staff order.
    pub fn staff_ids(&self, role: Role) -> Vec<Uuid> {
        self.staff
            .iter()
            .filter(|s| s.role == role)
            .map(|s| s.id)
            .collect()
    }
}

pub struct StaffMember {
    pub id: Uuid,
    pub full_name: &'static str,
    pub email: String,
    pub role: Role,
}

/// Readable fixed ids: clinic n is `d3e00000-0000-4000-8000-000000000n00`, its staff `…n01`–`…n05`.
pub fn fixed_id(clinic: u128, member: u128) -> Uuid {
    Uuid::from_u128(0xd3e0_0000_0000_4000_8000_0000_0000_0000 | (clinic << 8) | member)
}

pub fn clinics() -> Vec<DemoClinic> {
    let clinic =
        |n: u128, slug, name, city, staff: [(&'static str, &'static str, Role); 5]| DemoClinic {
            id: fixed_id(n, 0),
            slug,
            name,
            city,
            staff: staff
                .into_iter()
                .zip(1..)
                .map(|((full_name, login, role), member)| StaffMember {
                    id: fixed_id(n, member),
                    full_name,
                    email: format!("{login}@{slug}.pulso.test"),
                    role,
                })
                .collect(),
        };
    vec![
        clinic(
            1,
            "sonrisa",
            "Clínica Dental Sonrisa",
            "Madrid",
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
            "alameda",
            "Centro Dental Alameda",
            "Sevilla",
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
    ]
}
