package io.ptune.nativebridge;

/**
 * Shape of a native prompt method; fields a method does not use are ignored.
 *
 * @param method the prompt-learning method
 * @param numVirtualTokens P, the number of virtual tokens (> 0); for composite blocks, their sum
 * @param encoderType P-tuning reparameterisation (MLP or bi-LSTM + MLP)
 * @param encoderHiddenSize width of the P-tuning encoder, the prefix projection, or the dynamic
 *     prompt generator (> 0 where used)
 * @param encoderNumLayers LSTM layers of the P-tuning encoder
 * @param encoderDropout dropout between LSTM layers (training only)
 * @param prefixProjection prefix tuning: reparameterise the prefix through an MLP
 * @param seed seeds the default (PyTorch-style) initialisation of every parameter
 */
public record PromptSpecOptions(
        Method method,
        int numVirtualTokens,
        EncoderType encoderType,
        int encoderHiddenSize,
        int encoderNumLayers,
        double encoderDropout,
        boolean prefixProjection,
        long seed) {

    /** Native method ids, in the order of ptune::PromptMethod. */
    public enum Method {
        PROMPT_TUNING,
        P_TUNING,
        PREFIX_TUNING,
        DYNAMIC
    }

    /** Native encoder ids, in the order of ptune::PromptEncoderType. */
    public enum EncoderType {
        MLP,
        LSTM
    }

    /** Plain prompt tuning with P virtual tokens. */
    public static PromptSpecOptions promptTuning(int numVirtualTokens) {
        return new PromptSpecOptions(Method.PROMPT_TUNING, numVirtualTokens, EncoderType.MLP, 0, 0, 0.0, false, 0);
    }
}
