// Small TypeBox builders the contract's JSON schemas share (and the control plane's other routes).
import { type TSchema, Type } from 'typebox';

export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
export const DateTime = Type.String({ format: 'date-time' });
export const StringMap = (description: string) => Type.Record(Type.String(), Type.String(), { description });
