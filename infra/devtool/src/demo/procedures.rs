//! The procedures the demo books: the codes, names and durations of the global catalog, and how
//! often each comes up in an agenda.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;

pub struct Procedure {
    pub code: &'static str,
    pub name: &'static str,
    pub minutes: u32,
    /// Relative frequency in the agenda.
    weight: u32,
    pub reasons: &'static [&'static str],
}

/// What the demo books, and how often. Codes, names and durations mirror the global catalog
/// that the migrations seed (migrations/20261123000004_catalog_seed_and_platform_admin.sql);
/// `seed` refuses to run when one of these codes is missing there.
pub const PROCEDURES: &[Procedure] = &[
    Procedure {
        code: "REV",
        name: "Revisión general",
        minutes: 30,
        weight: 28,
        reasons: &[
            "Revisión",
            "Revisión anual",
            "Revisión y radiografía",
            "Molestias al masticar",
        ],
    },
    Procedure {
        code: "LIMP",
        name: "Limpieza dental (profilaxis)",
        minutes: 45,
        weight: 22,
        reasons: &["Limpieza", "Limpieza y fluoración", "Limpieza semestral"],
    },
    Procedure {
        code: "EMP",
        name: "Empaste (obturación)",
        minutes: 45,
        weight: 18,
        reasons: &[
            "Empaste",
            "Empaste pieza 36",
            "Empaste pieza 14",
            "Caries en molar",
        ],
    },
    Procedure {
        code: "ENDO",
        name: "Endodoncia",
        minutes: 60,
        weight: 8,
        reasons: &[
            "Endodoncia",
            "Endodoncia pieza 46",
            "Endodoncia - segunda sesión",
        ],
    },
    Procedure {
        code: "EXT",
        name: "Extracción",
        minutes: 45,
        weight: 8,
        reasons: &[
            "Extracción",
            "Extracción muela del juicio",
            "Extracción pieza 38",
        ],
    },
    Procedure {
        code: "ORTO",
        name: "Ortodoncia - control",
        minutes: 30,
        weight: 16,
        reasons: &[
            "Ortodoncia - control",
            "Ortodoncia - ajuste de brackets",
            "Ortodoncia - revisión de alineadores",
        ],
    },
];

/// A procedure, as often as the agenda books it.
pub fn pick_procedure(rng: &mut StdRng) -> &'static Procedure {
    PROCEDURES
        .choose_weighted(rng, |p| p.weight)
        .unwrap_or(&PROCEDURES[0])
}
