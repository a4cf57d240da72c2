/**
 * The free-space reserve in the configuration: its default, the board profiles' values, and
 * the message for a percentage over 100%.
 */
import { expect, test } from "bun:test";
import { ConfigError, parseConfig } from "../../daemon/config/load";

test("min_free defaults to 5% of the file system; board profiles raise it on flash", () => {
  expect(parseConfig("", "t.toml").quota.min_free).toEqual({ percent: 5 });
  expect(parseConfig('[board]\nprofile = "rpi4"\n', "t.toml").quota.min_free).toEqual({ percent: 10 });
  expect(parseConfig('[board]\nprofile = "x64-server"\n', "t.toml").quota.min_free).toEqual({ percent: 2 });
  expect(parseConfig('[board]\nprofile = "rpi4"\n[quota]\nmin_free = "1 GiB"\n', "t.toml").quota.min_free).toEqual({ bytes: 1024 ** 3 });
});

test('min_free = "150%" is reported as more than the whole file system', () => {
  let err: unknown;
  try {
    parseConfig('[quota]\nmin_free = "150%"\n', "t.toml");
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  expect((err as ConfigError).problems).toEqual(['quota.min_free: "150%" is more than the whole file system; a percentage must be from 0% to 100% (e.g. "5%")']);
});
