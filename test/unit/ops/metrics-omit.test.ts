// docs/operations.md: sat_signing_key_next_rotation_seconds is absent with KEY_ROTATION_DAYS=0 (and "== 0" is the
// alert for a rotation that is due): a gauge with no value is left out of the scrape, not printed as 0.
import { registry, setOrOmit, signingKeyNextRotation } from '../../../src/metrics.js';

const NAME = 'sat_signing_key_next_rotation_seconds';
const lines = async () => (await registry.metrics()).split('\n').filter((l) => l.startsWith(NAME));

describe('setOrOmit', () => {
  afterAll(() => setOrOmit(NAME, signingKeyNextRotation, 0));

  it('leaves a gauge without a value out of the scrape, and brings it back with one', async () => {
    setOrOmit(NAME, signingKeyNextRotation, 3600);
    expect(await lines()).toEqual([`${NAME} 3600`]);
    setOrOmit(NAME, signingKeyNextRotation, null);
    expect(await lines()).toEqual([]);
    expect((await registry.metrics())).not.toContain(`# HELP ${NAME}`);
    setOrOmit(NAME, signingKeyNextRotation, null); // twice: still absent, no error
    expect(await lines()).toEqual([]);
    setOrOmit(NAME, signingKeyNextRotation, 0);
    expect(await lines()).toEqual([`${NAME} 0`]);
  });
});
