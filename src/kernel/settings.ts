/** A server's settings as stored and handed to its driver: parsing and checking live in core/settings.ts. */
export type SettingValue = string | number | boolean | string[];
export type Settings = Record<string, SettingValue>;
