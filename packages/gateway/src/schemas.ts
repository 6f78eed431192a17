import {
  CATEGORIES,
  ETH_ADDRESS_PATTERN,
  LAST_LEFT_REASONS,
  MULTIADDRS_MAX,
  MULTIADDR_LENGTH_MAX,
  RECORD_FIELDS,
  SELF_REPORTED_FIELDS,
  VERSION_LENGTH_MAX,
} from '@nodeledger/registry'
import type { NodeData, SelfReportedField } from '@nodeledger/registry'
import { NODES_LIMIT_DEFAULT, NODES_LIMIT_MAX, PEER_ID_PATTERN } from './constants.ts'

/**
 * The JSON Schemas of the gateway: Fastify validates requests and serializes responses with them,
 * and GET /v1/openapi.json is built from the same objects (openapi.ts), so the document cannot
 * drift from what is served. Plain JSON Schema (draft 2020-12 compatible), no $ref: each schema
 * is complete where it is used.
 */

export type JsonSchema = Readonly<Record<string, unknown>>

const unsigned = { type: 'integer', minimum: 0 } as const
const boolean = { type: 'boolean' } as const
const peerId = { type: 'string', pattern: PEER_ID_PATTERN } as const
const multiaddr = { type: 'string', minLength: 1, maxLength: MULTIADDR_LENGTH_MAX } as const

/** Every NodeData field with its JSON type: a field added to NodeData fails to compile here until it is described. */
const NODE_FIELD_SCHEMAS = {
  peerId,
  multiaddrs: { type: 'array', items: multiaddr, maxItems: MULTIADDRS_MAX },
  firstJoinedMs: unsigned,
  lastJoinedMs: unsigned,
  lastLeftMs: unsigned,
  lastLeftReason: { type: 'string', enum: LAST_LEFT_REASONS },
  lastUpdatedMs: unsigned,
  uptimeAccumulatedMs: unsigned,
  isActive: boolean,
  isStaked: boolean,
  isValidator: boolean,
  isTwitterScraper: boolean,
  isWebScraper: boolean,
  isDiscordScraper: boolean,
  isTelegramScraper: boolean,
  version: { type: 'string', maxLength: VERSION_LENGTH_MAX },
  ethAddress: { type: 'string', pattern: ETH_ADDRESS_PATTERN.source },
  returnedItems: unsigned,
  returnedItemsLastMs: unsigned,
  timeouts: unsigned,
  timeoutsLastMs: unsigned,
  notFound: unsigned,
  notFoundLastMs: unsigned,
  originSeq: unsigned,
  observers: { type: 'array', items: peerId },
  changedIndex: unsigned,
} as const satisfies Record<keyof NodeData, JsonSchema>

/** NodeJson: the NodeData record as JSON, every field, in the codec's field order. */
export const NODE_SCHEMA: JsonSchema = {
  type: 'object',
  description: 'A node record (NodeData): every field; times are milliseconds since the Unix epoch, 0 for never',
  properties: Object.fromEntries(RECORD_FIELDS.map((field) => [field, NODE_FIELD_SCHEMAS[field]])),
  required: [...RECORD_FIELDS],
  additionalProperties: false,
}

export const ERROR_SCHEMA: JsonSchema = {
  type: 'object',
  description: 'Any error: a stable code (branch on it) and a message for a person',
  properties: { code: { type: 'string' }, message: { type: 'string' } },
  required: ['code', 'message'],
  additionalProperties: false,
}

export const PEER_ID_PARAMS_SCHEMA: JsonSchema = {
  type: 'object',
  properties: { peerId: { ...peerId, description: 'A canonical base58btc libp2p peer id' } },
  required: ['peerId'],
  additionalProperties: false,
}

export const CATEGORY_PARAMS_SCHEMA: JsonSchema = {
  type: 'object',
  properties: { category: { type: 'string', enum: CATEGORIES, description: 'A work category' } },
  required: ['category'],
  additionalProperties: false,
}

export const NODES_QUERY_SCHEMA: JsonSchema = {
  type: 'object',
  properties: {
    active: { type: 'boolean', description: 'Only active (true) or inactive (false) nodes' },
    staked: { type: 'boolean', description: 'Only staked (true) or unstaked (false) nodes' },
    capability: { type: 'string', enum: CATEGORIES, description: 'Only nodes that advertise this capability' },
    limit: {
      type: 'integer',
      minimum: 1,
      maximum: NODES_LIMIT_MAX,
      default: NODES_LIMIT_DEFAULT,
      description: 'Records per page',
    },
    after: { ...peerId, description: "The previous page's `next`: start after this peer id" },
  },
  additionalProperties: false,
}

export const NODES_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  properties: {
    nodes: { type: 'array', items: NODE_SCHEMA },
    next: { type: ['string', 'null'], description: 'The `after` of the next page; null on the last page' },
    index: { ...unsigned, description: 'The log index this page reflects' },
  },
  required: ['nodes', 'next', 'index'],
  additionalProperties: false,
}

export const NODE_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  properties: { node: NODE_SCHEMA, index: { ...unsigned, description: 'The log index this answer reflects' } },
  required: ['node', 'index'],
  additionalProperties: false,
}

export const ELIGIBLE_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  properties: {
    category: { type: 'string', enum: CATEGORIES },
    nodes: { type: 'array', items: NODE_SCHEMA, description: 'Active, staked, capable; most reliable first' },
    index: unsigned,
  },
  required: ['category', 'nodes', 'index'],
  additionalProperties: false,
}

export const STATUS_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  properties: {
    role: { type: 'string', enum: ['worker', 'replica'] },
    peerId: { type: 'string' },
    appliedIndex: unsigned,
    leader: {
      type: ['object', 'null'],
      properties: { peerId: { type: 'string' } },
      required: ['peerId'],
      additionalProperties: true,
    },
    lagEntries: { type: ['integer', 'null'], minimum: 0 },
  },
  required: ['role', 'peerId', 'appliedIndex', 'leader', 'lagEntries'],
  additionalProperties: true,
}

/** The self-reported fields as a request may set them (the values the registry admits, checked again by it). */
const SELF_FIELD_SCHEMAS = Object.fromEntries(
  SELF_REPORTED_FIELDS.map((field) => [field, NODE_FIELD_SCHEMAS[field]]),
) as Record<string, JsonSchema> as Record<SelfReportedField, JsonSchema>

export const SELF_BODY_SCHEMA: JsonSchema = {
  type: 'object',
  description: 'The fields a node may set about itself; only those given change',
  properties: SELF_FIELD_SCHEMAS,
  minProperties: 1,
  additionalProperties: false,
}

export const SELF_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  properties: {
    seq: { ...unsigned, description: 'The origin seq the update was published with' },
    index: { ...unsigned, description: 'The log index that applied it' },
  },
  required: ['seq', 'index'],
  additionalProperties: false,
}

export const EVENTS_QUERY_SCHEMA: JsonSchema = {
  type: 'object',
  properties: {
    from: {
      ...unsigned,
      description:
        "Send the changes after this log index (the last one seen); default: the node's applied index (only new changes). A `Last-Event-ID` header takes precedence",
    },
  },
  additionalProperties: false,
}

/** The `data` of one `change` event (documentation: the stream is not serialized by Fastify). */
export const CHANGE_EVENT_SCHEMA: JsonSchema = {
  type: 'object',
  properties: { index: unsigned, node: NODE_SCHEMA },
  required: ['index', 'node'],
  additionalProperties: false,
}
