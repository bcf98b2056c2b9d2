package io.ptune.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.InvalidConfigException;
import io.ptune.PtuneException;
import io.ptune.TestPaths;
import io.ptune.model.LoadOptions.DType;
import io.ptune.model.LoadOptions.Device;
import io.ptune.model.LoadOptions.DeviceType;
import io.ptune.nativebridge.NativeModel;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/** {@link LoadOptions}: parsing the flags' spellings, and models loaded in bf16 / on a missing GPU. */
class LoadOptionsTest {
    private static final long[] IDS = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315};

    @Test
    void parsesDevices() {
        assertEquals(Device.CPU, Device.parse("cpu"));
        assertEquals(Device.CPU, Device.parse(" CPU "));
        assertEquals(new Device(DeviceType.CUDA, 0), Device.parse("cuda"));
        assertEquals(Device.cuda(1), Device.parse("cuda:1"));
        assertEquals(Device.cuda(12), Device.parse("CUDA:12"));
        assertEquals("cuda:1", Device.cuda(1).toString());
        assertEquals("cpu", Device.CPU.toString());
    }

    @Test
    void refusesOtherDevicesNamingTheFlag() {
        for (String bad : new String[] {"tpu", "cuda:", "cuda:-1", "cuda:x", "cpu:1", "", "gpu", "cuda:99999999999"}) {
            InvalidConfigException e = assertThrows(InvalidConfigException.class, () -> Device.parse(bad), bad);
            assertTrue(e.getMessage().startsWith("--device: '"), e.getMessage());
            assertTrue(e.getMessage().contains("use cpu, cuda or cuda:N"), e.getMessage());
        }
        assertThrows(InvalidConfigException.class, () -> Device.cuda(-1));
        assertThrows(InvalidConfigException.class, () -> new Device(DeviceType.CPU, 1));
    }

    @Test
    void parsesDtypes() {
        assertEquals(DType.FP32, DType.parse("fp32"));
        assertEquals(DType.BF16, DType.parse("BF16"));
        assertEquals(DType.BF16, DType.parse("bfloat16"));
        assertEquals(DType.FP16, DType.parse("fp16"));
        assertEquals("bf16", DType.BF16.toString());
        InvalidConfigException e = assertThrows(InvalidConfigException.class, () -> DType.parse("fp64"));
        assertEquals("--dtype: 'fp64' is not a dtype; use fp32, bf16 or fp16", e.getMessage());
        assertEquals(LoadOptions.DEFAULT, LoadOptions.parse(null, null));
        assertEquals(new LoadOptions(Device.cuda(1), DType.FP16), LoadOptions.parse("cuda:1", "fp16"));
    }

    @Test
    void ordinalsAreTheFacadeEnums() {
        // native/include/ptune/ptune.h: DeviceType kCpu 0, kCuda 1; DType kFp32 0, kBf16 1, kFp16 2.
        assertEquals(0, DeviceType.CPU.ordinal());
        assertEquals(1, DeviceType.CUDA.ordinal());
        assertEquals(0, DType.FP32.ordinal());
        assertEquals(1, DType.BF16.ordinal());
        assertEquals(2, DType.FP16.ordinal());
    }

    @Test
    void bf16LogitsFollowFp32() {
        // bf16 keeps an 8-bit significand: unit roundoff u = 2^-8. Through stories260K's 5 layers the
        // roundings add up to a largest logit error of ~16u of the logits' scale (the native
        // Bf16VsFp32 tests derive it: ~45 roundings, RMS ~4u, the tail of ~12k logits ~4 sigma).
        double tolerance = 16.0 / 256.0;
        try (Model fp32 = Model.load(TestPaths.stories260k());
                Model bf16 = Model.load(TestPaths.stories260k(), null, new LoadOptions(Device.CPU, DType.BF16))) {
            assertEquals(LoadOptions.DEFAULT, fp32.loadOptions());
            assertEquals(DType.BF16, bf16.loadOptions().dtype());
            float[][] a = fp32.logits(null, IDS);
            float[][] b = bf16.logits(null, IDS);
            double scale = 0;
            double error = 0;
            for (int t = 0; t < a.length; t++) {
                for (int v = 0; v < a[t].length; v++) {
                    assertTrue(Float.isFinite(b[t][v]));
                    scale = Math.max(scale, Math.abs(a[t][v]));
                    error = Math.max(error, Math.abs(a[t][v] - b[t][v]));
                }
            }
            assertTrue(error <= tolerance * scale, "max error " + error + " over scale " + scale);
        }
    }

    @Test
    void cudaWithoutAGpuIsOneLine() {
        Assumptions.assumeTrue(NativeModel.cudaDeviceCount() == 0, "a GPU is available here");
        PtuneException e = assertThrows(PtuneException.class,
                () -> Model.load(TestPaths.stories260k(), null, new LoadOptions(Device.cuda(0), DType.FP32)));
        assertTrue(e.getMessage().startsWith("--device cuda: no CUDA device is available ("), e.getMessage());
        assertTrue(e.getMessage().endsWith("; use --device cpu"), e.getMessage());
        assertTrue(!e.getMessage().contains("\n"), e.getMessage());
    }

    @Test
    void fp16OnCpuSaysToUseBf16() {
        PtuneException e = assertThrows(PtuneException.class,
                () -> Model.load(TestPaths.stories260k(), null, new LoadOptions(Device.CPU, DType.FP16)));
        assertEquals("--dtype fp16 needs --device cuda; use bf16 on CPU", e.getMessage());
    }
}
