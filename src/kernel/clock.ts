/** Milliseconds since the epoch, as `Date.now` gives them: injected where tests must move time. */
export type Clock = () => number;
