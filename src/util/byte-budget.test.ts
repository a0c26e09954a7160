/** The byte budget: arrival order, a request larger than the whole budget, pressure calls. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteBudget } from './byte-budget.ts';

test('waiters are served in arrival order, and a small one does not overtake a large one', async () => {
  const budget = new ByteBudget(100);
  assert.ok(budget.tryAcquire(60));
  const order: string[] = [];
  const large = budget.acquire(80).then(() => order.push('large'));
  const small = budget.acquire(10).then(() => order.push('small'));
  assert.equal(budget.tryAcquire(10), false, 'no overtaking while someone waits');
  budget.release(60);
  await Promise.all([large, small]);
  assert.deepEqual(order, ['large', 'small']);
  assert.equal(budget.heldBytes, 90);
});

test('a request larger than the budget is granted once nothing else is held', async () => {
  const budget = new ByteBudget(100);
  assert.ok(budget.tryAcquire(1));
  let granted = false;
  const huge = budget.acquire(500).then(() => (granted = true));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(granted, false);
  budget.release(1);
  await huge;
  assert.equal(budget.heldBytes, 500);
  budget.release(500);
  assert.equal(budget.heldBytes, 0);
});

test('pressure listeners hear of every caller that has to wait, until they unsubscribe', async () => {
  const budget = new ByteBudget(10);
  let calls = 0;
  const unsubscribe = budget.onPressure(() => calls++);
  assert.ok(budget.tryAcquire(10));
  const first = budget.acquire(5);
  assert.equal(calls, 1);
  unsubscribe();
  const second = budget.acquire(5);
  assert.equal(calls, 1);
  assert.equal(budget.waiting, 2);
  budget.release(10);
  await Promise.all([first, second]);
  assert.throws(() => budget.release(11), /release of 11/);
});
