/** The refusal of an IAM condition expression: what is wrong and where. */
export class ConditionError extends Error {
  override readonly name = 'ConditionError';
  constructor(
    message: string,
    /** 1-based character position in the expression. */
    readonly position: number,
  ) {
    super(`${message} (at character ${position})`);
  }
}
