// A frontend's first use of docs/openapi.json, compiled by CI with `tsc --noEmit --strict`:
// if the document stops describing these operations, shapes or problems, this stops compiling.
// `generated/api.d.ts` is written by openapi-typescript from the document (infra/check-contract).

import type { components, operations, paths } from "./generated/api";

type Schemas = components["schemas"];
export type Patient = Schemas["PatientResponse"];
export type Appointment = Schemas["AppointmentResponse"];
export type Problem = Schemas["Problem"];

type JsonOf<R> = R extends { content: { "application/json": infer B } } ? B : never;
type Ok<Op extends keyof operations, S extends keyof operations[Op]["responses"]> = JsonOf<
  operations[Op]["responses"][S]
>;

/** Every error body is problem+json with a stable `type`. */
export class ApiProblem extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail);
  }
}

export class PulsoClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(this.baseUrl + path, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) {
      throw new ApiProblem((await response.json()) as Problem);
    }
    return (response.status === 204 ? undefined : await response.json()) as T;
  }

  getPatient(id: string): Promise<Ok<"getPatient", 200>> {
    return this.call("GET", `/patients/${id}`);
  }

  createPatient(body: Schemas["CreatePatientRequest"]): Promise<Ok<"createPatient", 201>> {
    return this.call("POST", "/patients", body);
  }

  updatePatient(id: string, body: Schemas["UpdatePatientRequest"]): Promise<Patient> {
    return this.call("PATCH", `/patients/${id}`, body);
  }

  /** Every page of a list, following `next_cursor` (the pagination every list shares). */
  async *patients(search?: string): AsyncGenerator<Patient> {
    let cursor: string | null | undefined;
    do {
      const query = new URLSearchParams();
      const params: NonNullable<paths["/patients"]["get"]["parameters"]["query"]> = {
        search,
        cursor: cursor ?? undefined,
        limit: 100,
      };
      for (const [key, value] of Object.entries(params)) {
        if (value !== undefined && value !== null) query.set(key, String(value));
      }
      const page: Ok<"listPatients", 200> = await this.call("GET", `/patients?${query}`);
      yield* page.items;
      cursor = page.next_cursor;
    } while (cursor);
  }

  book(body: Schemas["CreateAppointmentRequest"]): Promise<Appointment> {
    return this.call("POST", "/appointments", body);
  }

  changeStatus(
    id: string,
    action: operations["changeAppointmentStatus"]["parameters"]["path"]["action"],
  ): Promise<Appointment> {
    return this.call("POST", `/appointments/${id}/${action}`);
  }

  dashboard(): Promise<Ok<"getDashboard", 200>> {
    return this.call("GET", "/dashboard");
  }

  /** A patient's X-rays as `<img>` elements: the signed URLs need no token. */
  async thumbnails(patientId: string): Promise<HTMLImageElement[]> {
    const page: Ok<"listXrays", 200> = await this.call("GET", `/patients/${patientId}/xrays`);
    return page.items.flatMap((xray) => {
      const media: Schemas["MediaUrl"] | null | undefined = xray.media.thumbnail;
      if (!media) return [];
      const img = document.createElement("img");
      img.src = media.url;
      img.dataset.expiresAt = media.expires_at;
      return [img];
    });
  }
}

/** What a booking form shows for each conflict the document lists. */
export function describe(error: ApiProblem): string {
  switch (error.problem.type) {
    case "/problems/appointment-overlap":
      return `That time is taken: ${error.problem.detail}`;
    case "/problems/validation":
      return `Check ${error.problem.field ?? "the form"}: ${error.problem.detail}`;
    default:
      return error.problem.title;
  }
}

// Statuses are the document's enums, not free strings.
export const open: Appointment["status"][] = ["scheduled", "confirmed"];
