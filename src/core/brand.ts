/** A nominal type: `Brand<string, 'LeaseId'>` cannot be passed where a `Brand<string, 'BearerSecret'>` is expected. */
export type Brand<T, Name extends string> = T & { readonly __brand: Name };
