/** A config, mount request or flag the daemon cannot take as given (a 400 from the API). */
export class ConfigError extends Error {}
