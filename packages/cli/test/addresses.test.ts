import { describe, expect, it } from 'vitest'
import { bindable, checkAdvertised, checkListen, hostMultiaddr, planAddresses } from '../src/addresses.ts'
import { EXIT, exitCodeFor } from '../src/exit-codes.ts'

const PEER = '12D3KooWEDbQ1g11eY4gWPMK2Di2iRyrZDBc18sa9FSzEPZkYFdo'

function refusal(action: () => unknown): string {
  try {
    action()
  } catch (error) {
    expect(exitCodeFor(error)).toBe(EXIT.BAD_INPUT)
    return (error as Error).message
  }
  throw new Error('expected a refusal')
}

describe('cluster init addresses', () => {
  it('turns IPv4, IPv6 and DNS hosts into /ip4/, /ip6/ and /dns4/ multiaddrs', () => {
    expect(hostMultiaddr('10.0.0.1', 7001)).toBe('/ip4/10.0.0.1/tcp/7001')
    expect(hostMultiaddr('::1', 7001)).toBe('/ip6/::1/tcp/7001')
    expect(hostMultiaddr('[fd00::5]', 7001)).toBe('/ip6/fd00::5/tcp/7001')
    expect(hostMultiaddr('DB1.example.com', 7001)).toBe('/dns4/db1.example.com/tcp/7001')
    expect(hostMultiaddr('ledger-2', 7001)).toBe('/dns4/ledger-2/tcp/7001')
  })

  it('refuses what is neither an address nor a name', () => {
    expect(refusal(() => hostMultiaddr('10.0.0.300', 7001))).toContain('neither an IP address nor a DNS name')
    expect(refusal(() => hostMultiaddr('-bad.example', 7001))).toContain('neither')
    expect(refusal(() => hostMultiaddr('a b', 7001))).toContain('neither')
  })

  it('plans one address per host on --port, several loopback "hosts" included', () => {
    expect(planAddresses({ replicas: undefined, hosts: '127.0.0.21, 127.0.0.22,127.0.0.23', port: 7100 })).toEqual({
      addresses: ['/ip4/127.0.0.21/tcp/7100', '/ip4/127.0.0.22/tcp/7100', '/ip4/127.0.0.23/tcp/7100'],
    })
    expect(planAddresses({ replicas: 5, port: 7001 }).addresses).toEqual(
      [1, 2, 3, 4, 5].map((i) => `/ip4/127.0.0.${10 + i}/tcp/7001`),
    )
    expect(planAddresses({ replicas: undefined, port: 7001 }).addresses).toHaveLength(3)
  })

  it('takes --multiaddrs as given, each with its own port', () => {
    expect(
      planAddresses({
        replicas: undefined,
        multiaddrs: '/ip4/127.0.0.1/tcp/7001,/ip4/127.0.0.1/tcp/7002,/dns4/c.example.com/tcp/7001',
        port: 1,
      }).addresses,
    ).toEqual(['/ip4/127.0.0.1/tcp/7001', '/ip4/127.0.0.1/tcp/7002', '/dns4/c.example.com/tcp/7001'])
  })

  it('refuses shared addresses, wrong counts, /p2p/ suffixes, non-TCP and both flags at once', () => {
    expect(
      refusal(() => planAddresses({ replicas: undefined, hosts: 'a.example,b.example,a.example', port: 1 })),
    ).toContain('replicas 1 and 3 would both be at /dns4/a.example/tcp/1')
    expect(refusal(() => planAddresses({ replicas: 5, hosts: 'a,b,c', port: 1 }))).toContain('--replicas 5, but 3')
    expect(refusal(() => planAddresses({ replicas: undefined, hosts: 'a,b', port: 1 }))).toContain('3 or 5 replicas')
    expect(
      refusal(() => planAddresses({ replicas: undefined, multiaddrs: `/ip4/1.2.3.4/tcp/1/p2p/${PEER},x,y`, port: 1 })),
    ).toContain('leave out /p2p/')
    expect(refusal(() => checkAdvertised('/ip4/1.2.3.4/udp/1', '--multiaddrs entry 1'))).toContain('/tcp/<port>')
    expect(refusal(() => checkAdvertised('not a multiaddr', 'x'))).toContain('is not a multiaddr')
    expect(refusal(() => planAddresses({ replicas: undefined, hosts: 'a,b,c', multiaddrs: 'x', port: 1 }))).toContain(
      'not both',
    )
  })
})

describe('authority --listen', () => {
  it('binds IPs only; a DNS name needs --listen', () => {
    expect(bindable('/ip4/10.0.0.1/tcp/7001/p2p/x')).toBe(true)
    expect(bindable('/ip6/::/tcp/7001')).toBe(true)
    expect(bindable('/dns4/db1.example.com/tcp/7001')).toBe(false)
    expect(checkListen('/ip4/0.0.0.0/tcp/7001', PEER)).toBe('/ip4/0.0.0.0/tcp/7001')
    expect(checkListen(`/ip4/0.0.0.0/tcp/7001/p2p/${PEER}`, PEER)).toBe('/ip4/0.0.0.0/tcp/7001')
    expect(refusal(() => checkListen('/dns4/db1.example.com/tcp/7001', PEER))).toContain('/ip4|ip6/<host>/tcp/<port>')
    expect(refusal(() => checkListen('/ip4/0.0.0.0/tcp/7001/p2p/12D3KooWOther', PEER))).toContain('names peer')
  })
})
