//! Routes of the `clinics` function: `GET /me`, `GET` / `PATCH /clinic`, the staff
//! (`/staff`) and the platform operators' onboarding and archiving (`/platform/...`).

use super::invitations::{self, Invitation, InviteStaffRequest};
use super::onboarding::{
    self, NewClinic, NewClinicRequest, NewOrganizationAdminRequest, NewOrganizationRequest,
    OnboardedClinic, OrganizationAdminView, OrganizationView,
};
use super::organization::{self, OrganizationClinics, OrganizationQuery};
use super::platform::{self, PlatformClinicsQuery};
use super::service::ClinicsService;
use super::settings::{ClinicChanges, ClinicSettings, UpdateClinicRequest};
use super::types::{Me, StaffChanges, StaffMember, StaffQuery, UpdateStaffRequest};
use crate::access::{OrgAdmin, Person};
use crate::audit::Actor;
use crate::auth::{Principal, Role};
use crate::http::conditional::{IfMatch, IfMatchHeader, IfNoneMatchHeader, tagged};
use crate::http::responses::{Conflict, PreconditionFailed};
use crate::http::{self, ApiError, ApiJson, ApiPath, ApiQuery, RequestId};
use crate::ids::{ClinicId, OrganizationId, UserId};
use crate::pagination::Page;
use crate::state::AppState;
use ::http::{HeaderMap, StatusCode};
use axum::extract::State;
use axum::response::Response;
use axum::{Json, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router(state: AppState) -> Router {
    let edge = state.edge();
    http::finish(routes(), state, edge)
}

/// The routes with their OpenAPI description (`crate::contract`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(clinic, update_clinic))
        .routes(routes!(staff, invite_staff))
        .routes(routes!(update_member, deactivate_member))
        .routes(routes!(platform_clinics, onboard_clinic))
        .routes(routes!(create_organization))
        .routes(routes!(add_organization_admin))
        .routes(routes!(organization))
        .routes(routes!(archive_clinic))
        .routes(routes!(restore_clinic))
}

/// The organization routes' role: an active row of `organization_admins` (`access::OrgAdmin`).
const ORG_ADMINS: &[&str] = &[crate::auth::ORG_ADMIN];

/// The platform routes' role: an admin token with the platform power (checked again inside).
const PLATFORM: &[Role] = &[Role::Admin];

/// Who works at the clinic, and as what, is its admins' decision.
const STAFF_EDITORS: &[Role] = &[Role::Admin];

/// A clinic's settings are its management's: admins change them.
const SETTINGS_EDITORS: &[Role] = &[Role::Admin];

#[utoipa::path(
    get,
    path = "/me",
    tag = "clinics",
    operation_id = "getMe",
    summary = "The signed-in person and their clinics",
    description = "Who the token belongs to, and every clinic they are a member of: its name, \
                   time zone, locale and currency, their role there and the operations that \
                   role may call, and the organizations they administer. Call it first: it answers \
                   without `Pulso-Clinic` even for a person with several clinics (and for an \
                   organization's admin on no clinic's staff), and its clinic ids are what that \
                   header takes.",
    responses((status = 200, description = "The person and their memberships.", body = Me)),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn me(
    State(state): State<AppState>,
    person: Result<Person, ApiError>,
    headers: HeaderMap,
) -> Result<Json<Me>, ApiError> {
    let user = match person {
        Ok(Person(caller)) => caller.user_id,
        // On no clinic's staff: an organization's admin still has a `/me`.
        Err(ApiError::NotAMember) => {
            let admin = state
                .access
                .admit_organization_admin(&headers)
                .await
                .map_err(|refused| match refused {
                    // Neither staff nor an organization's admin: not a member, as before.
                    ApiError::Forbidden { .. } => ApiError::NotAMember,
                    refused => refused,
                })?;
            admin.user_id
        }
        Err(refused) => return Err(refused),
    };
    Ok(Json(ClinicsService::new(&state).me(user).await?))
}

#[utoipa::path(
    get,
    path = "/staff",
    tag = "clinics",
    operation_id = "listStaff",
    summary = "The clinic's staff",
    description = "Members of the clinic by name, with their role, initials and calendar \
                   colour: `?role=dentist&active=true` is the booking form's dentist list.",
    params(StaffQuery),
    responses((status = 200, description = "One page of staff.", body = Page<StaffMember>)),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn staff(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<StaffQuery>,
) -> Result<Json<Page<StaffMember>>, ApiError> {
    Ok(Json(
        ClinicsService::new(&state)
            .staff(principal.clinic_id, &query)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/staff",
    tag = "clinics",
    operation_id = "inviteStaffMember",
    summary = "Invite someone to the clinic's staff",
    description = "Makes the person with this email a member with the role, creating them when \
                   Pulso does not know them (someone who works at another clinic of any \
                   organization stays one person, with one sign-in). The sign-in service \
                   emails a newly created person an invitation with a temporary password. Safe \
                   to retry: a member with this email and role already answers 200; one with \
                   another role, or deactivated, is 409 `/problems/already-member` (change it \
                   with `PATCH /staff/{id}`). Recorded in the audit trail. 503 when the sign-in \
                   service cannot be reached: send the same request again.",
    request_body = InviteStaffRequest,
    responses(
        (status = 201, description = "Invited: the new member.", body = StaffMember),
        (status = 200, description = "A member with this email and role already.",
         body = StaffMember),
        (status = 409, response = Conflict),
    ),
    extensions(("x-roles" = json!(STAFF_EDITORS))),
)]
async fn invite_staff(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiJson(request): ApiJson<InviteStaffRequest>,
) -> Result<(StatusCode, Json<StaffMember>), ApiError> {
    principal.require(STAFF_EDITORS)?;
    let invitation = Invitation::try_from(request)?;
    let actor = Actor::person(&principal, &request_id);
    let (member, created) = invitations::invite(&state, &principal, &actor, invitation).await?;
    tracing::info!(member_id = %member.id, created, "staff member invited");
    Ok((created_or_found(created), Json(member)))
}

#[utoipa::path(
    get,
    path = "/clinic",
    tag = "clinics",
    operation_id = "getClinic",
    summary = "The clinic's settings",
    description = "Name, address, phone, time zone, locale, currency, default appointment \
                   length and brand colour of the clinic the request acts in. The `ETag` names \
                   this version: send it as `If-Match` with a change.",
    params(IfNoneMatchHeader),
    responses(
        (status = 200, description = "The settings.", body = ClinicSettings,
         headers(("ETag" = String, description = "This version of the settings."))),
        (status = 304, description = "The client's copy is current.",
         headers(("ETag" = String, description = "This version of the settings."))),
    ),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn clinic(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let settings = ClinicsService::new(&state)
        .settings(principal.clinic_id)
        .await?;
    Ok(tagged(StatusCode::OK, &headers, settings))
}

#[utoipa::path(
    patch,
    path = "/clinic",
    tag = "clinics",
    operation_id = "updateClinic",
    summary = "Change the clinic's settings",
    description = "Only the fields present change; `null` clears an optional one. The time \
                   zone must be one PostgreSQL knows by its IANA name; the dashboard counts days \
                   in it from the next read. Recorded in the audit trail with each changed \
                   field's old and new value. With `If-Match`, only while the settings are \
                   still that version (412 otherwise, nothing written).",
    params(IfMatchHeader),
    request_body = UpdateClinicRequest,
    responses(
        (status = 200, description = "The changed settings.", body = ClinicSettings,
         headers(("ETag" = String, description = "The new version of the settings."))),
        (status = 412, response = PreconditionFailed),
    ),
    extensions(("x-roles" = json!(SETTINGS_EDITORS))),
)]
async fn update_clinic(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    headers: HeaderMap,
    ApiJson(request): ApiJson<UpdateClinicRequest>,
) -> Result<Response, ApiError> {
    principal.require(SETTINGS_EDITORS)?;
    let if_match = IfMatch::from_headers(&headers)?;
    let changes = ClinicChanges::try_from(request)?;
    let actor = Actor::person(&principal, &request_id);
    let settings = ClinicsService::new(&state)
        .update_settings(principal.clinic_id, &changes, if_match.as_ref(), &actor)
        .await?;
    tracing::info!("clinic settings changed");
    Ok(tagged(StatusCode::OK, &HeaderMap::new(), settings))
}

#[utoipa::path(
    patch,
    path = "/staff/{id}",
    tag = "clinics",
    operation_id = "updateStaffMember",
    summary = "Change a member's role, standing or calendar colour",
    description = "Only the fields present change. A deactivation or a new role takes effect at \
                   the member's next request, and their open WebSocket connections to the \
                   clinic are closed with an `access_revoked` frame. The clinic keeps at least \
                   one active admin (409 `/problems/last-admin`). Recorded in the audit trail.",
    params(("id" = UserId, Path, description = "The member's user id.")),
    request_body = UpdateStaffRequest,
    responses(
        (status = 200, description = "The member as changed.", body = StaffMember),
        (status = 409, response = Conflict),
    ),
    extensions(("x-roles" = json!(STAFF_EDITORS))),
)]
async fn update_member(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(request): ApiJson<UpdateStaffRequest>,
) -> Result<Json<StaffMember>, ApiError> {
    principal.require(STAFF_EDITORS)?;
    let changes = StaffChanges::try_from(request)?;
    let actor = Actor::person(&principal, &request_id);
    let member = ClinicsService::new(&state)
        .update_member(principal.clinic_id, id, &changes, &actor)
        .await?;
    tracing::info!(member_id = %id, "staff member changed");
    Ok(Json(member))
}

#[utoipa::path(
    delete,
    path = "/staff/{id}",
    tag = "clinics",
    operation_id = "deactivateStaffMember",
    summary = "Deactivate a member",
    description = "The membership is deactivated, never erased: what the person did at the \
                   clinic keeps its author, and `PATCH` with `active: true` restores it. Takes \
                   effect at their next request; their open WebSocket connections are closed. \
                   The clinic's last active admin cannot be deactivated (409).",
    params(("id" = UserId, Path, description = "The member's user id.")),
    responses(
        (status = 204, description = "Deactivated (also when it already was)."),
        (status = 409, response = Conflict),
    ),
    extensions(("x-roles" = json!(STAFF_EDITORS))),
)]
async fn deactivate_member(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiPath(id): ApiPath<UserId>,
) -> Result<StatusCode, ApiError> {
    principal.require(STAFF_EDITORS)?;
    let actor = Actor::person(&principal, &request_id);
    ClinicsService::new(&state)
        .update_member(
            principal.clinic_id,
            id,
            &StaffChanges::deactivation(),
            &actor,
        )
        .await?;
    tracing::info!(member_id = %id, "staff member deactivated");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/platform/clinics",
    tag = "clinics",
    operation_id = "listPlatformClinics",
    summary = "Every clinic (Pulso's operators)",
    description = "Every clinic of every organization by slug, with its settings and whether it \
                   is archived. Platform admins only.",
    params(PlatformClinicsQuery),
    responses((status = 200, description = "One page of clinics.", body = Page<ClinicSettings>)),
    extensions(("x-roles" = json!(PLATFORM))),
)]
async fn platform_clinics(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<PlatformClinicsQuery>,
) -> Result<Json<Page<ClinicSettings>>, ApiError> {
    principal.require(PLATFORM)?;
    Ok(Json(platform::clinics(&state, &principal, &query).await?))
}

#[utoipa::path(
    post,
    path = "/platform/clinics/{id}/archive",
    tag = "clinics",
    operation_id = "archiveClinic",
    summary = "Archive a clinic (Pulso's operators)",
    description = "Every member is refused with 403 `/problems/clinic-archived` from their next \
                   request and the clinic's WebSockets are closed; its data is kept, and \
                   `restore` opens it again. Not the clinic the request acts in (409 \
                   `/problems/acting-clinic`). Recorded in the clinic's audit trail. Platform \
                   admins only.",
    params(("id" = ClinicId, Path, description = "The clinic's id.")),
    responses(
        (status = 200, description = "The clinic, archived (also when it already was).",
         body = ClinicSettings),
        (status = 409, response = Conflict),
    ),
    extensions(("x-roles" = json!(PLATFORM))),
)]
async fn archive_clinic(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiPath(id): ApiPath<ClinicId>,
) -> Result<Json<ClinicSettings>, ApiError> {
    principal.require(PLATFORM)?;
    let actor = Actor::person(&principal, &request_id);
    let clinic = platform::set_archived(&state, &principal, &actor, id, true).await?;
    tracing::info!(archived_clinic = %id, "clinic archived");
    Ok(Json(clinic))
}

#[utoipa::path(
    post,
    path = "/platform/clinics/{id}/restore",
    tag = "clinics",
    operation_id = "restoreClinic",
    summary = "Restore an archived clinic (Pulso's operators)",
    description = "Its members are let in again from their next request. Recorded in the \
                   clinic's audit trail. Platform admins only.",
    params(("id" = ClinicId, Path, description = "The clinic's id.")),
    responses((status = 200, description = "The clinic, active (also when it already was).",
               body = ClinicSettings)),
    extensions(("x-roles" = json!(PLATFORM))),
)]
async fn restore_clinic(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiPath(id): ApiPath<ClinicId>,
) -> Result<Json<ClinicSettings>, ApiError> {
    principal.require(PLATFORM)?;
    let actor = Actor::person(&principal, &request_id);
    let clinic = platform::set_archived(&state, &principal, &actor, id, false).await?;
    tracing::info!(restored_clinic = %id, "clinic restored");
    Ok(Json(clinic))
}

/// 201 for what a request created, 200 for what a retry of it finds.
fn created_or_found(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

#[utoipa::path(
    post,
    path = "/platform/organizations",
    tag = "clinics",
    operation_id = "createOrganization",
    summary = "Create an organization (Pulso's operators)",
    description = "A chain of clinics. Safe to retry: the same slug and name again answers 200 \
                   with the organization; a slug taken by another is 409 \
                   `/problems/slug-taken`. Platform admins only.",
    request_body = NewOrganizationRequest,
    responses(
        (status = 201, description = "Created.", body = OrganizationView),
        (status = 200, description = "Created by an earlier identical request.",
         body = OrganizationView),
        (status = 409, response = Conflict),
    ),
    extensions(("x-roles" = json!(PLATFORM))),
)]
async fn create_organization(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiJson(request): ApiJson<NewOrganizationRequest>,
) -> Result<(StatusCode, Json<OrganizationView>), ApiError> {
    principal.require(PLATFORM)?;
    let actor = Actor::person(&principal, &request_id);
    let (organization, created) =
        onboarding::create_organization(&state, &principal, &actor, request).await?;
    tracing::info!(organization_id = %organization.id, created, "organization onboarded");
    Ok((created_or_found(created), Json(organization)))
}

#[utoipa::path(
    post,
    path = "/platform/clinics",
    tag = "clinics",
    operation_id = "onboardClinic",
    summary = "Onboard a clinic with its first admin (Pulso's operators)",
    description = "Creates the clinic in its organization and makes the admin (found by email, \
                   or created) its first member, in one transaction, recorded in the new \
                   clinic's audit trail. Safe to retry: the same slug, organization and admin \
                   again answers 200 with what the first request made; a slug taken otherwise \
                   is 409 `/problems/slug-taken`. Platform admins only.",
    request_body = NewClinicRequest,
    responses(
        (status = 201, description = "Onboarded.", body = OnboardedClinic),
        (status = 200, description = "Onboarded by an earlier identical request.",
         body = OnboardedClinic),
        (status = 409, response = Conflict),
    ),
    extensions(("x-roles" = json!(PLATFORM))),
)]
async fn onboard_clinic(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiJson(request): ApiJson<NewClinicRequest>,
) -> Result<(StatusCode, Json<OnboardedClinic>), ApiError> {
    principal.require(PLATFORM)?;
    let new = NewClinic::try_from(request)?;
    let actor = Actor::person(&principal, &request_id);
    let (onboarded, created) = onboarding::create_clinic(&state, &principal, &actor, new).await?;
    tracing::info!(new_clinic = %onboarded.clinic.id, created, "clinic onboarded");
    Ok((created_or_found(created), Json(onboarded)))
}

#[utoipa::path(
    get,
    path = "/organization",
    tag = "clinics",
    operation_id = "getOrganization",
    summary = "The organization and its clinics (its admins)",
    description = "The organization the caller administers (`Pulso-Organization` names one \
                   when they administer several; `GET /me` lists them) and one page of its \
                   clinics by slug, with their settings. For the chain's management, who need \
                   not be on any clinic's staff.",
    params(OrganizationQuery),
    responses((status = 200, description = "The organization and its clinics.",
               body = OrganizationClinics)),
    extensions(("x-roles" = json!(ORG_ADMINS))),
)]
async fn organization(
    State(state): State<AppState>,
    admin: OrgAdmin,
    ApiQuery(query): ApiQuery<OrganizationQuery>,
) -> Result<Json<OrganizationClinics>, ApiError> {
    Ok(Json(organization::clinics(&state, &admin, query).await?))
}

#[utoipa::path(
    post,
    path = "/platform/organizations/{id}/admins",
    tag = "clinics",
    operation_id = "addOrganizationAdmin",
    summary = "Name an organization's admin (Pulso's operators)",
    description = "Makes the person with this email an `org_admin` of the organization (found \
                   by email or created, and invited by the sign-in service as `POST /staff` \
                   invites): they read `GET /organization` and its dashboard without being on \
                   any clinic's staff. Safe to retry: an admin already answers 200. Recorded in \
                   the platform's audit trail. Platform admins only.",
    params(("id" = OrganizationId, Path, description = "The organization's id.")),
    request_body = NewOrganizationAdminRequest,
    responses(
        (status = 201, description = "Named.", body = OrganizationAdminView),
        (status = 200, description = "An admin of the organization already.",
         body = OrganizationAdminView),
    ),
    extensions(("x-roles" = json!(PLATFORM))),
)]
async fn add_organization_admin(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiPath(id): ApiPath<OrganizationId>,
    ApiJson(request): ApiJson<NewOrganizationAdminRequest>,
) -> Result<(StatusCode, Json<OrganizationAdminView>), ApiError> {
    principal.require(PLATFORM)?;
    let actor = Actor::person(&principal, &request_id);
    let (admin, created) =
        onboarding::add_organization_admin(&state, &principal, &actor, id, request).await?;
    tracing::info!(organization_id = %id, created, "organization admin named");
    Ok((created_or_found(created), Json(admin)))
}
