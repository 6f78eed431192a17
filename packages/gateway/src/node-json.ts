import { RECORD_FIELDS } from '@nodeledger/registry'
import type { NodeData } from '@nodeledger/registry'

/**
 * NodeJson: exactly the NodeData fields, in the codec's order, numbers as JSON numbers. Picked
 * field by field, so an object that carries more than a record (a cache's wrapper) never leaks it.
 */
export function nodeJson(record: NodeData): Record<string, unknown> {
  const json: Record<string, unknown> = {}
  for (const field of RECORD_FIELDS) json[field] = record[field]
  return json
}
