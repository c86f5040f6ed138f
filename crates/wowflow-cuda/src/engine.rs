//! [`CudaEngine`]: the SW-MMD step of `wowflow_core::CpuEngine`, stage for stage, on a GPU.
//!
//! 1. projections `P = Θ Xᵀ` (L × N) by cuBLAS SGEMM; every (direction, class) segment sorted
//!    with its permutation by `sort_chunks` (shared-memory bitonic network, segments up to
//!    [`CHUNK`] entries) and, for longer segments, `merge_pass` (global-memory merge passes);
//!    cumulative masses by `segment_levels` for clouds with particle weights;
//! 2. `pair_costs`: exact 1-D cost of every class pair on every direction (equal-size
//!    uniform fast path, general monotone-coupling pieces otherwise), then `sum_dirs`: the mean
//!    over directions with a fixed reduction tree, so results are bit-reproducible;
//! 3. `coefficients` (`κ'` of the sliced costs, on the device so the step never waits for the
//!    host) and `derivatives` (the WoW gradient's 1-D part D, L × N, scattered through the
//!    sort permutation);
//! 4. `G = (1/L) Dᵀ Θ` by SGEMM.
//!
//! Device buffers live in the engine and only grow, and the small tables that describe a
//! cloud's classes are re-sent only when they change, so repeated steps at one shape allocate
//! nothing. Storage is `f32`; costs and their reductions are `f64`, as on the CPU.

use crate::error::{CudaError, Result};
use crate::kernels::{self, CHUNK};
use crate::libs;
use cudarc::cublas::{sys as cublas_sys, CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, DeviceRepr,
    LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use std::sync::{Arc, Mutex, MutexGuard};
use wowflow_core::{
    ClassLayout, CoreError, CostPower, Directions, Engine, Kernel, LabeledCloud, SwMmdOutput,
};

/// Warps (one class pair each) per block of `pair_costs`.
const PAIR_WARPS: u32 = 8;

/// The GPU engine. Cheap to share (`Arc<dyn Engine>`): calls are serialised on one CUDA
/// stream behind a mutex.
pub struct CudaEngine {
    inner: Mutex<Inner>,
    device: String,
}

impl std::fmt::Debug for CudaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaEngine")
            .field("device", &self.device)
            .finish()
    }
}

/// Kernel choices that only benchmarks vary (`WOWFLOW_CUDA_SORT` = `warp` (default),
/// `warp-direct` or `shared`; `WOWFLOW_CUDA_ROWS_BLOCK` = threads of
/// the per-direction kernels, default 1024), read once when an engine is created.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    sort: &'static str,
    rows_block: u32,
}

impl Tuning {
    fn from_env() -> Self {
        let sort = match std::env::var("WOWFLOW_CUDA_SORT").as_deref() {
            Ok("shared") => "shared",
            Ok("warp-direct") => "warp-direct",
            _ => "warp",
        };
        let rows_block = std::env::var("WOWFLOW_CUDA_ROWS_BLOCK")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|&b| b.is_multiple_of(32) && (32..=1024).contains(&b))
            .unwrap_or(1024);
        Self { sort, rows_block }
    }
}

pub(crate) struct Funcs {
    sort_chunks: CudaFunction,
    sort_warp_16_direct: CudaFunction,
    /// `sort_warp_E` for E = 1, 2, 4, 8, 16 entries per lane (E = 16 with launch bounds
    /// for 6 blocks per SM, the fastest of the measured variants).
    sort_warp: [CudaFunction; 5],
    merge_pass: CudaFunction,
    segment_levels: CudaFunction,
    pair_costs: CudaFunction,
    pub(crate) sum_dirs: CudaFunction,
    coefficients: CudaFunction,
    derivatives: CudaFunction,
    pair_costs_equal: CudaFunction,
    derivatives_equal: CudaFunction,
    pub(crate) gaussian_directions: CudaFunction,
    pub(crate) normalize_rows: CudaFunction,
    pub(crate) gather_rows: CudaFunction,
    pub(crate) optimizer_update: CudaFunction,
    pub(crate) sum_squares: CudaFunction,
    pub(crate) step_guard: CudaFunction,
}

/// The launch geometry of a kernel: a 2-D grid of 1-D blocks with `shared` bytes of dynamic
/// shared memory (the only shape the wowflow kernels use).
pub(crate) fn launch(grid: (u32, u32), block: u32, shared: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (grid.0, grid.1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: shared,
    }
}

/// A device buffer that only grows.
pub(crate) struct Buf<T>(pub(crate) Option<CudaSlice<T>>);

impl<T: DeviceRepr + ValidAsZeroBits> Buf<T> {
    pub(crate) fn new() -> Self {
        Buf(None)
    }

    /// The buffer, reallocated (zeroed) when it holds fewer than `len` elements.
    pub(crate) fn ensure(
        &mut self,
        stream: &Arc<CudaStream>,
        len: usize,
    ) -> Result<&mut CudaSlice<T>> {
        let grow = self.0.as_ref().is_none_or(|s| s.len() < len);
        if grow {
            self.0 = None; // free before allocating the larger one
            self.0 = Some(stream.alloc_zeros::<T>(len.max(1))?);
        }
        Ok(self.0.as_mut().expect("allocated above"))
    }

    pub(crate) fn get(&self) -> &CudaSlice<T> {
        self.0.as_ref().expect("buffer used before it was filled")
    }

    pub(crate) fn ptr(&self, stream: &CudaStream) -> u64 {
        let (p, _sync) = self.get().device_ptr(stream);
        p
    }
}

/// Copies `data` into `buf` unless the last copy (remembered in `host`) was identical: the
/// class tables of a cloud rarely change between steps.
pub(crate) fn upload_cached<T: DeviceRepr + ValidAsZeroBits + Copy + PartialEq>(
    stream: &Arc<CudaStream>,
    buf: &mut Buf<T>,
    host: &mut Option<Vec<T>>,
    data: &[T],
) -> Result<()> {
    if buf.0.is_some() && host.as_deref() == Some(data) {
        return Ok(());
    }
    let dst = buf.ensure(stream, data.len())?;
    if !data.is_empty() {
        stream.memcpy_htod(data, &mut dst.slice_mut(0..data.len()))?;
    }
    *host = Some(data.to_vec());
    Ok(())
}

/// One cloud on the device: points, projections, sorted segments and the class tables.
pub(crate) struct DevCloud {
    n: usize,
    classes: usize,
    weighted: bool,
    max_len: usize,
    /// The common length of all classes, when they have one.
    common_len: Option<usize>,
    chunks: usize,
    pad_max: usize,
    pub(crate) points: Buf<f32>,
    proj: Buf<f32>,
    sorted: Buf<f32>,
    perm: Buf<u32>,
    alt_sorted: Buf<f32>,
    alt_perm: Buf<u32>,
    levels: Buf<f64>,
    weights: Buf<f64>,
    weights_host: Option<Vec<f64>>,
    class_w: Buf<f64>,
    class_w_host: Option<Vec<f64>>,
    offsets: Buf<i32>,
    offsets_host: Option<Vec<i32>>,
    class_of: Buf<i32>,
    class_of_host: Option<Vec<i32>>,
    chunk_start: Buf<i32>,
    chunk_start_host: Option<Vec<i32>>,
    chunk_len: Buf<i32>,
    chunk_len_host: Option<Vec<i32>>,
    chunk_local: Buf<i32>,
    chunk_local_host: Option<Vec<i32>>,
}

impl DevCloud {
    fn new() -> Self {
        Self {
            n: 0,
            classes: 0,
            weighted: false,
            max_len: 0,
            common_len: None,
            chunks: 0,
            pad_max: 1,
            points: Buf::new(),
            proj: Buf::new(),
            sorted: Buf::new(),
            perm: Buf::new(),
            alt_sorted: Buf::new(),
            alt_perm: Buf::new(),
            levels: Buf::new(),
            weights: Buf::new(),
            weights_host: None,
            class_w: Buf::new(),
            class_w_host: None,
            offsets: Buf::new(),
            offsets_host: None,
            class_of: Buf::new(),
            class_of_host: None,
            chunk_start: Buf::new(),
            chunk_start_host: None,
            chunk_len: Buf::new(),
            chunk_len_host: None,
            chunk_local: Buf::new(),
            chunk_local_host: None,
        }
    }

    /// Device pointer of the cumulative levels, or 0 (uniform weights) for the kernels.
    fn levels_ptr(&self, stream: &CudaStream) -> u64 {
        if self.weighted {
            self.levels.ptr(stream)
        } else {
            0
        }
    }

    fn weights_ptr(&self, stream: &CudaStream) -> u64 {
        if self.weighted {
            self.weights.ptr(stream)
        } else {
            0
        }
    }
}

pub(crate) struct Inner {
    pub(crate) stream: Arc<CudaStream>,
    blas: CudaBlas,
    /// A second stream and cuBLAS handle: the target is sliced there, concurrently.
    stream2: Arc<CudaStream>,
    blas2: CudaBlas,
    fork: CudaEvent,
    join: CudaEvent,
    pub(crate) f: Funcs,
    tuning: Tuning,
    /// Shared memory (bytes) the per-direction kernels may use (opted in at creation).
    shared_max: usize,
    _module: Arc<CudaModule>,
    _ctx: Arc<CudaContext>,
    pub(crate) dirs: Buf<f32>,
    pub(crate) a: DevCloud,
    pub(crate) b: DevCloud,
    pairs: Buf<i32>,
    pairs_host: Option<Vec<i32>>,
    pair_of: Buf<i32>,
    pair_of_host: Option<Vec<i32>>,
    per_dir: Buf<f64>,
    costs: Buf<f64>,
    coef: Buf<f32>,
    total: Buf<f32>,
    derivs: Buf<f32>,
    pub(crate) grad: Buf<f32>,
}

impl CudaEngine {
    /// The engine on device 0.
    pub fn new() -> Result<Self> {
        Self::with_device(0)
    }

    /// The engine on device `ordinal`.
    ///
    /// Checks that the driver, NVRTC and cuBLAS libraries can be loaded before touching any
    /// of them (cudarc would panic), then creates a context and a stream, compiles the kernels
    /// for the device's architecture (a fraction of a second, once) and creates the cuBLAS
    /// handle.
    pub fn with_device(ordinal: usize) -> Result<Self> {
        let (inner, device) = Inner::create(ordinal)?;
        Ok(Self {
            device,
            inner: Mutex::new(inner),
        })
    }

    /// Lets cuBLAS use TF32 tensor cores for the projections (about 3× the SGEMM rate on
    /// Ampere and Hopper, at ~1e-3 relative error in the projections). Off by default:
    /// the exact f32 GEMMs keep the gradient within f32 tolerance of the CPU engine.
    pub fn set_tf32(&self, on: bool) -> Result<()> {
        self.lock().set_tf32(on)
    }

    /// The device's name, ordinal and compute capability.
    pub fn device(&self) -> &str {
        &self.device
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic inside a previous call cannot leave the buffers in a state later calls
        // rely on (every call rewrites what it reads), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn check_dims(what: &str, cloud: &LabeledCloud, dirs: &Directions) -> wowflow_core::Result<()> {
    if cloud.dim() != dirs.dim() {
        return Err(CoreError::DimensionMismatch {
            what: what.into(),
            expected: dirs.dim(),
            got: cloud.dim(),
        });
    }
    Ok(())
}

/// The limits of the launch geometry (grid y = directions) and of the `i32` indices the
/// kernels use.
fn check_limits(dirs: &Directions, clouds: &[&LabeledCloud]) -> Result<()> {
    if dirs.count() > 65_535 {
        return Err(CudaError::Unsupported(format!(
            "{} directions (at most 65535 per call)",
            dirs.count()
        )));
    }
    for c in clouds {
        let total = c
            .n_points()
            .max(c.points().len())
            .max(dirs.count() * c.n_points());
        if total >= i32::MAX as usize || dirs.as_slice().len() >= i32::MAX as usize {
            return Err(CudaError::Unsupported(format!(
                "{} particles × {} directions (the kernels index with 32-bit integers)",
                c.n_points(),
                dirs.count()
            )));
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Side {
    A,
    B,
}

impl Engine for CudaEngine {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn sw_mmd(
        &self,
        source: &LabeledCloud,
        target: &LabeledCloud,
        directions: &Directions,
        kernel: &Kernel,
        grad: &mut [f32],
    ) -> wowflow_core::Result<SwMmdOutput> {
        check_dims("source", source, directions)?;
        check_dims("target", target, directions)?;
        if grad.len() != source.points().len() {
            return Err(CoreError::Shape {
                what: "gradient buffer".into(),
                expected: source.points().len().to_string(),
                got: grad.len().to_string(),
            });
        }
        kernel.validate()?;
        check_limits(directions, &[source, target])?;
        Ok(self
            .lock()
            .sw_mmd(source, target, directions, kernel, grad)?)
    }

    fn sliced_costs(
        &self,
        a: &LabeledCloud,
        b: &LabeledCloud,
        directions: &Directions,
        power: CostPower,
    ) -> wowflow_core::Result<Vec<f64>> {
        check_dims("first cloud", a, directions)?;
        check_dims("second cloud", b, directions)?;
        check_limits(directions, &[a, b])?;
        Ok(self.lock().sliced_costs(a, b, directions, power)?)
    }
}

fn kernel_code(kernel: &Kernel) -> (i32, f64) {
    match *kernel {
        Kernel::Riesz { r } => (0, r),
        Kernel::Gaussian { h } => (1, h),
        Kernel::Imq { h } => (2, h),
        Kernel::Laplace { h } => (3, h),
    }
}

fn power_code(power: CostPower) -> i32 {
    match power {
        CostPower::Two => 2,
        CostPower::One => 1,
    }
}

impl Inner {
    /// The common class length of both clouds when the one-block-per-direction kernels
    /// apply: uniform weights, every class of both clouds that long, and both clouds'
    /// rows of one direction (plus `extra` bytes) within the shared memory a block may use.
    fn equal_rows(&self, extra: usize) -> Option<usize> {
        let (a, b) = (&self.a, &self.b);
        let seg = a.common_len?;
        let fits = (a.n + b.n) * 4 + extra <= self.shared_max;
        (!a.weighted && !b.weighted && b.common_len == Some(seg) && seg > 0 && fits).then_some(seg)
    }

    /// A context, stream, compiled module and cuBLAS handle on device `ordinal`, with the
    /// device's description.
    ///
    /// Checks that the driver, NVRTC and cuBLAS libraries can be loaded before touching any
    /// of them (cudarc would panic), then compiles the kernels for the device's architecture
    /// (a fraction of a second, once).
    pub(crate) fn create(ordinal: usize) -> Result<(Self, String)> {
        libs::require_all()?;
        let ctx = CudaContext::new(ordinal)?;
        // One stream, so cudarc's per-buffer event tracking (meant for several streams)
        // would only add an event record per launch. SAFETY: every buffer of this engine is
        // used on `stream` alone, and none exists yet.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream()?;
        let (major, minor) = ctx.compute_capability()?;
        let name = ctx.name().unwrap_or_else(|_| "unknown device".into());
        let ptx = kernels::compile(kernels::arch_for(major, minor))?;
        let module = ctx.load_module(ptx)?;
        let load = |n: &str| module.load_function(n);
        let f = Funcs {
            sort_chunks: load("sort_chunks")?,
            sort_warp_16_direct: load("sort_warp_16_direct")?,
            sort_warp: [
                load("sort_warp_1")?,
                load("sort_warp_2")?,
                load("sort_warp_4")?,
                load("sort_warp_8")?,
                load("sort_warp_16")?,
            ],
            merge_pass: load("merge_pass")?,
            segment_levels: load("segment_levels")?,
            pair_costs: load("pair_costs")?,
            sum_dirs: load("sum_dirs")?,
            coefficients: load("coefficients")?,
            derivatives: load("derivatives")?,
            pair_costs_equal: load("pair_costs_equal")?,
            derivatives_equal: load("derivatives_equal")?,
            gaussian_directions: load("gaussian_directions")?,
            normalize_rows: load("normalize_rows")?,
            gather_rows: load("gather_rows")?,
            optimizer_update: load("optimizer_update")?,
            sum_squares: load("sum_squares")?,
            step_guard: load("step_guard")?,
        };
        // Opt the per-direction kernels in to the device's largest shared memory per block
        // (one direction's rows of both clouds must fit); 48 KiB if that is refused.
        let optin = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            )
            .unwrap_or(0);
        let mut shared_max = kernels::SHARED_DEFAULT;
        if optin as usize > shared_max {
            let attr =
                cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
            let ok = [&f.pair_costs_equal, &f.derivatives_equal]
                .iter()
                .all(|func| func.set_attribute(attr, optin).is_ok());
            if ok {
                shared_max = optin as usize;
            }
        }
        let blas = CudaBlas::new(stream.clone())?;
        let stream2 = ctx.new_stream()?;
        let blas2 = CudaBlas::new(stream2.clone())?;
        let no_timing = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DISABLE_TIMING);
        let (fork, join) = (ctx.new_event(no_timing)?, ctx.new_event(no_timing)?);
        let inner = Inner {
            stream,
            blas,
            stream2,
            blas2,
            fork,
            join,
            f,
            tuning: Tuning::from_env(),
            shared_max,
            _module: module,
            _ctx: ctx,
            dirs: Buf::new(),
            a: DevCloud::new(),
            b: DevCloud::new(),
            pairs: Buf::new(),
            pairs_host: None,
            pair_of: Buf::new(),
            pair_of_host: None,
            per_dir: Buf::new(),
            costs: Buf::new(),
            coef: Buf::new(),
            total: Buf::new(),
            derivs: Buf::new(),
            grad: Buf::new(),
        };
        Ok((
            inner,
            format!("{name} (device {ordinal}, sm_{major}{minor})"),
        ))
    }

    fn upload_dirs(&mut self, dirs: &Directions) -> Result<()> {
        let data = dirs.as_slice();
        let dst = self.dirs.ensure(&self.stream, data.len())?;
        self.stream
            .memcpy_htod(data, &mut dst.slice_mut(0..data.len()))?;
        Ok(())
    }

    /// Copies a cloud's points (row-major `N × d`) into its device buffer.
    pub(crate) fn upload_points(&mut self, side: Side, pts: &[f32]) -> Result<()> {
        let stream = self.stream.clone();
        let dc = match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        };
        let dst = dc.points.ensure(&stream, pts.len())?;
        stream.memcpy_htod(pts, &mut dst.slice_mut(0..pts.len()))?;
        Ok(())
    }

    /// Stage 1 for one cloud whose points are already on the device (`upload_points`, or
    /// resident): project, sort (with permutation), levels. `cloud` describes the classes
    /// and weights; its own points are not read, so a structure-only stand-in (any `dim`)
    /// serves, and `d` is the dimension of the device points.
    ///
    /// With `second`, the work goes to the second stream (and its cuBLAS handle), so the
    /// two clouds are sliced concurrently: one's GEMM on the tensor cores overlaps the
    /// other's sort.
    fn slice_cloud(
        &mut self,
        side: Side,
        cloud: &ClassLayout,
        l: usize,
        d: usize,
        second: bool,
        mark: &mut dyn FnMut(&'static str) -> Result<()>,
    ) -> Result<()> {
        let stream = if second {
            self.stream2.clone()
        } else {
            self.stream.clone()
        };
        let blas = if second { &self.blas2 } else { &self.blas };
        let dc = match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        };
        let (n, classes) = (cloud.n_points(), cloud.n_classes());
        dc.n = n;
        dc.classes = classes;

        // Class tables (re-sent only when they change).
        let offsets: Vec<i32> = cloud.offsets().iter().map(|&o| o as i32).collect();
        if dc.offsets_host.as_deref() != Some(&offsets[..]) || dc.offsets.0.is_none() {
            let mut class_of = Vec::with_capacity(n);
            let (mut starts, mut lens, mut locals) = (Vec::new(), Vec::new(), Vec::new());
            let mut max_len = 0usize;
            let mut max_chunk = 1usize;
            for c in 0..classes {
                let (s, e) = (cloud.offsets()[c], cloud.offsets()[c + 1]);
                class_of.extend(std::iter::repeat_n(c as i32, e - s));
                max_len = max_len.max(e - s);
                let mut k = 0;
                while k < e - s {
                    let len = CHUNK.min(e - s - k);
                    starts.push((s + k) as i32);
                    lens.push(len as i32);
                    locals.push(k as i32);
                    max_chunk = max_chunk.max(len);
                    k += len;
                }
            }
            dc.max_len = max_len;
            dc.common_len = (0..classes)
                .all(|c| cloud.offsets()[c + 1] - cloud.offsets()[c] == max_len)
                .then_some(max_len);
            dc.chunks = starts.len();
            dc.pad_max = max_chunk.next_power_of_two();
            upload_cached(&stream, &mut dc.class_of, &mut dc.class_of_host, &class_of)?;
            upload_cached(
                &stream,
                &mut dc.chunk_start,
                &mut dc.chunk_start_host,
                &starts,
            )?;
            upload_cached(&stream, &mut dc.chunk_len, &mut dc.chunk_len_host, &lens)?;
            upload_cached(
                &stream,
                &mut dc.chunk_local,
                &mut dc.chunk_local_host,
                &locals,
            )?;
            upload_cached(&stream, &mut dc.offsets, &mut dc.offsets_host, &offsets)?;
        }
        upload_cached(
            &stream,
            &mut dc.class_w,
            &mut dc.class_w_host,
            cloud.class_weights(),
        )?;
        dc.weighted = cloud.particle_weights().is_some();
        if let Some(w) = cloud.particle_weights() {
            upload_cached(&stream, &mut dc.weights, &mut dc.weights_host, w)?;
        }

        // Points and projections P (L × N row-major) = Θ Xᵀ. cuBLAS is column-major: the
        // row-major N × d points are a column-major d × N matrix, so Pᵀ (N × L, column-major,
        // which is P row-major) = op(X_cm)ᵀ · Θ_cm with Θ_cm the d × L view of Θ.
        dc.proj.ensure(&stream, l * n)?;
        dc.sorted.ensure(&stream, l * n)?;
        dc.perm.ensure(&stream, l * n)?;
        let cfg = projection_gemm(n, l, d);
        // SAFETY: points hold n·d, directions l·d and proj at least l·n floats, matching the
        // dimensions and leading dimensions above.
        unsafe {
            blas.gemm(
                cfg,
                dc.points.get(),
                self.dirs.get(),
                dc.proj.0.as_mut().expect("allocated above"),
            )
        }?;

        mark(match side {
            Side::A => "project source",
            Side::B => "project target",
        })?;

        // Sort every (direction, class) segment.
        let (p_proj, p_sorted, p_perm) = (
            dc.proj.ptr(&stream),
            dc.sorted.ptr(&stream),
            dc.perm.ptr(&stream),
        );
        let (p_cs, p_cl, p_cloc) = (
            dc.chunk_start.ptr(&stream),
            dc.chunk_len.ptr(&stream),
            dc.chunk_local.ptr(&stream),
        );
        let row_len = n as i32;
        if dc.pad_max <= kernels::WARP_SORT_MAX && self.tuning.sort != "shared" {
            // One warp per chunk, in registers: E = pad / 32 entries per lane.
            let e = (dc.pad_max / 32).max(1);
            let func = if e == 16 && self.tuning.sort == "warp-direct" {
                &self.f.sort_warp_16_direct
            } else {
                &self.f.sort_warp[e.trailing_zeros() as usize]
            };
            let chunks = dc.chunks as i32;
            let cfg = launch((dc.chunks.div_ceil(4) as u32, l as u32), 128, 0);
            // SAFETY: as for sort_chunks below; warps past the last chunk return at once.
            unsafe {
                stream
                    .launch_builder(func)
                    .arg(&p_proj)
                    .arg(&p_sorted)
                    .arg(&p_perm)
                    .arg(&p_cs)
                    .arg(&p_cl)
                    .arg(&p_cloc)
                    .arg(&chunks)
                    .arg(&row_len)
                    .launch(cfg)
            }?;
        } else {
            let threads = (dc.pad_max / 2).clamp(32, 1024) as u32;
            let cfg = launch(
                (dc.chunks as u32, l as u32),
                threads,
                (dc.pad_max * 8) as u32,
            );
            // SAFETY: arguments match the kernel's signature (pointers as 64-bit device
            // addresses); every index the kernel forms stays inside the buffers sized above.
            unsafe {
                stream
                    .launch_builder(&self.f.sort_chunks)
                    .arg(&p_proj)
                    .arg(&p_sorted)
                    .arg(&p_perm)
                    .arg(&p_cs)
                    .arg(&p_cl)
                    .arg(&p_cloc)
                    .arg(&row_len)
                    .launch(cfg)
            }?;
        }

        // Fallback for segments longer than CHUNK: merge sorted runs pairwise in global memory.
        if dc.max_len > CHUNK {
            dc.alt_sorted.ensure(&stream, l * n)?;
            dc.alt_perm.ensure(&stream, l * n)?;
            let (p_off, p_cof) = (dc.offsets.ptr(&stream), dc.class_of.ptr(&stream));
            let mut width = CHUNK;
            while width < dc.max_len {
                let (si, pi, so, po) = (
                    dc.sorted.ptr(&stream),
                    dc.perm.ptr(&stream),
                    dc.alt_sorted.ptr(&stream),
                    dc.alt_perm.ptr(&stream),
                );
                let w = width as i32;
                let cfg = launch((n.div_ceil(256) as u32, l as u32), 256, 0);
                // SAFETY: as above; input and output buffers are distinct.
                unsafe {
                    stream
                        .launch_builder(&self.f.merge_pass)
                        .arg(&si)
                        .arg(&pi)
                        .arg(&so)
                        .arg(&po)
                        .arg(&p_off)
                        .arg(&p_cof)
                        .arg(&row_len)
                        .arg(&w)
                        .launch(cfg)
                }?;
                std::mem::swap(&mut dc.sorted, &mut dc.alt_sorted);
                std::mem::swap(&mut dc.perm, &mut dc.alt_perm);
                width *= 2;
            }
        }

        // Cumulative masses for weighted clouds.
        if dc.weighted {
            dc.levels.ensure(&stream, l * n)?;
            let (pp, pw, pl, po) = (
                dc.perm.ptr(&stream),
                dc.weights.ptr(&stream),
                dc.levels.ptr(&stream),
                dc.offsets.ptr(&stream),
            );
            let cfg = launch((classes as u32, l as u32), 256, 0);
            // SAFETY: as above.
            unsafe {
                stream
                    .launch_builder(&self.f.segment_levels)
                    .arg(&pp)
                    .arg(&pw)
                    .arg(&pl)
                    .arg(&po)
                    .arg(&row_len)
                    .launch(cfg)
            }?;
        }
        Ok(())
    }

    /// Stage 2: direction-averaged costs of `pairs` (4 ints each) into `self.costs`.
    fn pair_costs(&mut self, pairs: &[i32], l: usize, power: CostPower) -> Result<usize> {
        let stream = self.stream.clone();
        let p = pairs.len() / 4;
        upload_cached(&stream, &mut self.pairs, &mut self.pairs_host, pairs)?;
        self.per_dir.ensure(&stream, p * l)?;
        self.costs.ensure(&stream, p)?;
        let (a, b) = (&self.a, &self.b);
        let (sa, la, oa, na) = (
            a.sorted.ptr(&stream),
            a.levels_ptr(&stream),
            a.offsets.ptr(&stream),
            a.n as i32,
        );
        let (sb, lb, ob, nb) = (
            b.sorted.ptr(&stream),
            b.levels_ptr(&stream),
            b.offsets.ptr(&stream),
            b.n as i32,
        );
        let (pp, np, nl, pw) = (
            self.pairs.ptr(&stream),
            p as i32,
            l as i32,
            power_code(power),
        );
        let pd = self.per_dir.ptr(&stream);
        if let Some(seg) = self.equal_rows(0) {
            let seg = seg as i32;
            let cfg = launch(
                (l as u32, 1),
                self.tuning.rows_block,
                ((a.n + b.n) * 4) as u32,
            );
            // SAFETY: arguments match `pair_costs_equal`; the shared rows fit (equal_rows).
            unsafe {
                stream
                    .launch_builder(&self.f.pair_costs_equal)
                    .arg(&sa)
                    .arg(&na)
                    .arg(&sb)
                    .arg(&nb)
                    .arg(&seg)
                    .arg(&pp)
                    .arg(&np)
                    .arg(&nl)
                    .arg(&pw)
                    .arg(&pd)
                    .launch(cfg)
            }?;
            return self.finish_pair_costs(p, l);
        }
        let cfg = launch(
            ((p as u32).div_ceil(PAIR_WARPS), l as u32),
            32 * PAIR_WARPS,
            0,
        );
        // SAFETY: arguments match `pair_costs`; pair entries name existing classes.
        unsafe {
            stream
                .launch_builder(&self.f.pair_costs)
                .arg(&sa)
                .arg(&la)
                .arg(&oa)
                .arg(&na)
                .arg(&sb)
                .arg(&lb)
                .arg(&ob)
                .arg(&nb)
                .arg(&pp)
                .arg(&np)
                .arg(&nl)
                .arg(&pw)
                .arg(&pd)
                .launch(cfg)
        }?;
        self.finish_pair_costs(p, l)
    }

    /// The mean over directions of the per-direction pair costs, into `self.costs`.
    fn finish_pair_costs(&mut self, p: usize, l: usize) -> Result<usize> {
        let stream = self.stream.clone();
        let (pd, nl) = (self.per_dir.ptr(&stream), l as i32);
        let pc = self.costs.ptr(&stream);
        let cfg = launch((p as u32, 1), 256, 0);
        // SAFETY: per_dir holds p·l values, costs p.
        unsafe {
            stream
                .launch_builder(&self.f.sum_dirs)
                .arg(&pd)
                .arg(&pc)
                .arg(&nl)
                .launch(cfg)
        }?;
        Ok(p)
    }

    /// The device pointer of the direction-averaged pair costs.
    pub(crate) fn costs_ptr(&self) -> u64 {
        self.costs.ptr(&self.stream)
    }

    fn download_costs(&mut self, p: usize) -> Result<Vec<f64>> {
        let mut out = vec![0.0f64; p];
        self.stream
            .memcpy_dtoh(&self.costs.get().slice(0..p), &mut out[..])?;
        Ok(out)
    }

    fn sliced_costs(
        &mut self,
        a: &LabeledCloud,
        b: &LabeledCloud,
        dirs: &Directions,
        power: CostPower,
    ) -> Result<Vec<f64>> {
        let l = dirs.count();
        self.upload_dirs(dirs)?;
        self.upload_points(Side::A, a.points())?;
        self.upload_points(Side::B, b.points())?;
        self.slice_cloud(Side::A, a.layout(), l, a.dim(), false, &mut |_| Ok(()))?;
        self.slice_cloud(Side::B, b.layout(), l, b.dim(), false, &mut |_| Ok(()))?;
        let mut pairs = Vec::with_capacity(4 * a.n_classes() * b.n_classes());
        for c in 0..a.n_classes() {
            for k in 0..b.n_classes() {
                pairs.extend_from_slice(&[0, c as i32, 1, k as i32]);
            }
        }
        let p = self.pair_costs(&pairs, l, power)?;
        let out = self.download_costs(p)?;
        self.stream.synchronize()?;
        Ok(out)
    }

    fn sw_mmd(
        &mut self,
        source: &LabeledCloud,
        target: &LabeledCloud,
        dirs: &Directions,
        kernel: &Kernel,
        grad: &mut [f32],
    ) -> Result<SwMmdOutput> {
        self.upload_dirs(dirs)?;
        self.upload_points(Side::A, source.points())?;
        self.upload_points(Side::B, target.points())?;
        let (pairs, p) = self.gradient_marked(
            source.layout(),
            target.layout(),
            dirs.count(),
            source.dim(),
            kernel,
            None,
        )?;
        let n_d = source.points().len();
        let costs = self.download_costs(p)?;
        self.stream
            .memcpy_dtoh(&self.grad.get().slice(0..n_d), grad)?;
        self.stream.synchronize()?;
        Ok(assemble(
            source.layout(),
            target.layout(),
            kernel,
            &pairs,
            &costs,
        ))
    }

    /// Stages 1–4 on device-resident data: the directions in `self.dirs` (L × d), the
    /// points in `a.points` / `b.points`; `source` and `target` describe their classes and
    /// weights. Leaves the WoW gradient in `self.grad` (N × d) and the pair costs in
    /// `self.costs`, and returns the pair list (4 ints per pair, the order of the costs)
    /// with its length. Nothing is copied back and nothing waits for the device; `profile`,
    /// when given, is called after each stage with its name (and drains the stream).
    pub(crate) fn gradient_marked(
        &mut self,
        source: &ClassLayout,
        target: &ClassLayout,
        l: usize,
        d: usize,
        kernel: &Kernel,
        profile: Option<&mut dyn FnMut(&'static str) -> Result<()>>,
    ) -> Result<(Vec<i32>, usize)> {
        // Profiling drains the stream after each stage, so the clouds are then sliced one
        // after the other on the main stream; otherwise concurrently.
        let concurrent = profile.is_none();
        let mut no_marks = |_: &'static str| Ok(());
        let mark: &mut dyn FnMut(&'static str) -> Result<()> = match profile {
            Some(m) => m,
            None => &mut no_marks,
        };
        let stream = self.stream.clone();
        let power = kernel.cost();
        let (c_n, k_n, n) = (source.n_classes(), target.n_classes(), source.n_points());
        if concurrent {
            // Fork: the second stream waits for everything queued so far (directions,
            // uploads), slices the target while the main stream slices the source; join.
            self.fork.record(&self.stream)?;
            self.stream2.wait(&self.fork)?;
            self.slice_cloud(Side::A, source, l, d, false, &mut |_| Ok(()))?;
            self.slice_cloud(Side::B, target, l, d, true, &mut |_| Ok(()))?;
            self.join.record(&self.stream2)?;
            self.stream.wait(&self.join)?;
            mark("project + sort (both, concurrent)")?;
        } else {
            self.slice_cloud(Side::A, source, l, d, false, mark)?;
            mark("sort source")?;
            self.slice_cloud(Side::B, target, l, d, false, mark)?;
            mark("sort target")?;
        }
        // Pairs in the CPU engine's order; pair_of[c·Q + q] → index of (c, partner q).
        let q_n = c_n + k_n;
        let mut pairs = Vec::new();
        let mut pair_of = vec![-1i32; c_n * q_n];
        let mut index = 0i32;
        for c in 0..c_n {
            for c2 in c + 1..c_n {
                pairs.extend_from_slice(&[0, c as i32, 0, c2 as i32]);
                pair_of[c * q_n + c2] = index;
                pair_of[c2 * q_n + c] = index;
                index += 1;
            }
            for k in 0..k_n {
                pairs.extend_from_slice(&[0, c as i32, 1, k as i32]);
                pair_of[c * q_n + c_n + k] = index;
                index += 1;
            }
        }
        for k in 0..k_n {
            for k2 in k + 1..k_n {
                pairs.extend_from_slice(&[1, k as i32, 1, k2 as i32]);
            }
        }
        let p = self.pair_costs(&pairs, l, power)?;
        mark("pair costs")?;

        // Stage 3a: coefficients on the device (no round trip to the host mid-step).
        upload_cached(&stream, &mut self.pair_of, &mut self.pair_of_host, &pair_of)?;
        self.coef.ensure(&stream, c_n * q_n)?;
        self.total.ensure(&stream, c_n)?;
        let (kind, prm) = kernel_code(kernel);
        let (pc, ppo, pa, pb) = (
            self.costs.ptr(&stream),
            self.pair_of.ptr(&stream),
            self.a.class_w.ptr(&stream),
            self.b.class_w.ptr(&stream),
        );
        let (pcoef, ptot) = (self.coef.ptr(&stream), self.total.ptr(&stream));
        let (ci, ki) = (c_n as i32, k_n as i32);
        let cfg = launch(
            (c_n as u32, 1),
            (q_n.div_ceil(32) * 32).min(1024) as u32,
            (q_n * 4) as u32,
        );
        // SAFETY: arguments match `coefficients`; tables hold C·Q entries; the shared
        // array holds Q floats (Q·4 bytes: far below the limit for any class count the
        // pair tables could hold).
        unsafe {
            stream
                .launch_builder(&self.f.coefficients)
                .arg(&pc)
                .arg(&ppo)
                .arg(&pa)
                .arg(&pb)
                .arg(&ci)
                .arg(&ki)
                .arg(&kind)
                .arg(&prm)
                .arg(&pcoef)
                .arg(&ptot)
                .launch(cfg)
        }?;

        mark("coefficients")?;

        // Stage 3b: derivatives D (L × N), scattered to particle order.
        self.derivs.ensure(&stream, l * n)?;
        let (a, b) = (&self.a, &self.b);
        let (sa, pa_perm, la, wa, oa, na) = (
            a.sorted.ptr(&stream),
            a.perm.ptr(&stream),
            a.levels_ptr(&stream),
            a.weights_ptr(&stream),
            a.offsets.ptr(&stream),
            a.n as i32,
        );
        let (sb, lb, ob, nb) = (
            b.sorted.ptr(&stream),
            b.levels_ptr(&stream),
            b.offsets.ptr(&stream),
            b.n as i32,
        );
        let (pw, pd) = (power_code(power), self.derivs.ptr(&stream));
        if let Some(seg) = self.equal_rows(c_n * q_n * 4 + self.a.n * 4) {
            let seg = seg as i32;
            let cfg = launch(
                (l as u32, 1),
                self.tuning.rows_block,
                ((2 * a.n + b.n + c_n * q_n) * 4) as u32,
            );
            // SAFETY: arguments match `derivatives_equal`; the shared rows and the
            // coefficient table fit (equal_rows); every (l, particle) is written once.
            unsafe {
                stream
                    .launch_builder(&self.f.derivatives_equal)
                    .arg(&sa)
                    .arg(&pa_perm)
                    .arg(&na)
                    .arg(&sb)
                    .arg(&nb)
                    .arg(&seg)
                    .arg(&ci)
                    .arg(&ki)
                    .arg(&pcoef)
                    .arg(&ptot)
                    .arg(&pw)
                    .arg(&pd)
                    .launch(cfg)
            }?;
        } else {
            let cfg = launch((c_n as u32, l as u32), 256, 0);
            // SAFETY: arguments match `derivatives`; D holds L·N floats and every
            // (l, particle) is written exactly once (the permutation of each segment is a
            // bijection).
            unsafe {
                stream
                    .launch_builder(&self.f.derivatives)
                    .arg(&sa)
                    .arg(&pa_perm)
                    .arg(&la)
                    .arg(&wa)
                    .arg(&oa)
                    .arg(&na)
                    .arg(&sb)
                    .arg(&lb)
                    .arg(&ob)
                    .arg(&nb)
                    .arg(&ci)
                    .arg(&ki)
                    .arg(&pcoef)
                    .arg(&ptot)
                    .arg(&pw)
                    .arg(&pd)
                    .launch(cfg)
            }?;
        }
        mark("derivatives")?;

        // Stage 4: G (N × d row-major) = (1/L) Dᵀ Θ. Column-major: Gᵀ (d × N) = Θ_cm (d × L)
        // · op(D_cm) where D_cm is the N × L column-major view of D, transposed.
        self.grad.ensure(&stream, n * d)?;
        let cfg = back_projection_gemm(n, l, d);
        // SAFETY: directions hold l·d, D l·n and grad n·d floats.
        unsafe {
            self.blas.gemm(
                cfg,
                self.dirs.get(),
                self.derivs.get(),
                self.grad.0.as_mut().expect("allocated above"),
            )
        }?;

        mark("back-projection")?;
        Ok((pairs, p))
    }

    /// cuBLAS math mode: TF32 tensor cores or exact f32.
    pub(crate) fn set_tf32(&mut self, on: bool) -> Result<()> {
        let mode = if on {
            cublas_sys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            cublas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        for blas in [&self.blas, &self.blas2] {
            // SAFETY: the handle is valid for the engine's lifetime; the call only sets a
            // flag.
            unsafe { cublas_sys::cublasSetMathMode(*blas.handle(), mode) }.result()?;
        }
        Ok(())
    }
}

/// SGEMM for the projections `P` (L × N row-major) `= Θ Xᵀ` with `X` N × d and `Θ` L × d
/// row-major. cuBLAS is column-major: a row-major r × c matrix is a column-major c × r one,
/// so `Pᵀ` (column-major N × L, leading dimension N) `= op(A) · B` with A the column-major
/// d × N view of X (transposed) and B the column-major d × L view of Θ.
fn projection_gemm(n: usize, l: usize, d: usize) -> GemmConfig<f32> {
    GemmConfig {
        transa: cublas_sys::cublasOperation_t::CUBLAS_OP_T,
        transb: cublas_sys::cublasOperation_t::CUBLAS_OP_N,
        m: n as i32,
        n: l as i32,
        k: d as i32,
        alpha: 1.0,
        lda: d as i32,
        ldb: d as i32,
        beta: 0.0,
        ldc: n as i32,
    }
}

/// SGEMM for the back-projection `G` (N × d row-major) `= (1/L) Dᵀ Θ` with `D` L × N. In
/// column-major terms `Gᵀ` (d × N) `= (1/L) Θ_cm · op(D_cm)`, where `Θ_cm` is the d × L view of
/// Θ and `D_cm` the N × L view of D, transposed.
fn back_projection_gemm(n: usize, l: usize, d: usize) -> GemmConfig<f32> {
    GemmConfig {
        transa: cublas_sys::cublasOperation_t::CUBLAS_OP_N,
        transb: cublas_sys::cublasOperation_t::CUBLAS_OP_T,
        m: d as i32,
        n: n as i32,
        k: l as i32,
        alpha: 1.0 / l as f32,
        lda: d as i32,
        ldb: n as i32,
        beta: 0.0,
        ldc: d as i32,
    }
}

/// The value and cost matrices from the pair costs, exactly as the CPU engine forms them.
pub(crate) fn assemble(
    source: &ClassLayout,
    target: &ClassLayout,
    kernel: &Kernel,
    pairs: &[i32],
    costs: &[f64],
) -> SwMmdOutput {
    let (c_n, k_n) = (source.n_classes(), target.n_classes());
    let mut source_costs = vec![0.0; c_n * c_n];
    let mut cross_costs = vec![0.0; c_n * k_n];
    let mut target_costs = vec![0.0; k_n * k_n];
    for (pr, &s) in pairs.chunks_exact(4).zip(costs) {
        let (i, j) = (pr[1] as usize, pr[3] as usize);
        match (pr[0], pr[2]) {
            (0, 0) => {
                source_costs[i * c_n + j] = s;
                source_costs[j * c_n + i] = s;
            }
            (0, 1) => cross_costs[i * k_n + j] = s,
            _ => {
                target_costs[i * k_n + j] = s;
                target_costs[j * k_n + i] = s;
            }
        }
    }
    let value = wowflow_core::engine::mmd_value(
        kernel,
        source.class_weights(),
        target.class_weights(),
        &source_costs,
        &cross_costs,
        &target_costs,
    );
    SwMmdOutput {
        value,
        source_costs,
        cross_costs,
        target_costs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cublas_sys::cublasOperation_t as Op;

    /// BLAS `sgemm` semantics (column-major, `C = α op(A) op(B) + β C`), to check the
    /// configurations handed to cuBLAS on a machine without a GPU.
    fn sgemm(cfg: &GemmConfig<f32>, a: &[f32], b: &[f32], c: &mut [f32]) {
        let (m, n, k) = (cfg.m as usize, cfg.n as usize, cfg.k as usize);
        let (lda, ldb, ldc) = (cfg.lda as usize, cfg.ldb as usize, cfg.ldc as usize);
        let at = |i: usize, p: usize| match cfg.transa {
            Op::CUBLAS_OP_N => a[i + p * lda],
            _ => a[p + i * lda],
        };
        let bt = |p: usize, j: usize| match cfg.transb {
            Op::CUBLAS_OP_N => b[p + j * ldb],
            _ => b[j + p * ldb],
        };
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k).map(|p| at(i, p) as f64 * bt(p, j) as f64).sum();
                c[i + j * ldc] = cfg.alpha * dot as f32 + cfg.beta * c[i + j * ldc];
            }
        }
    }

    #[test]
    fn gemm_configurations_compute_the_row_major_products() {
        let (n, l, d) = (7, 5, 3);
        let x: Vec<f32> = (0..n * d).map(|i| ((i * 37 % 11) as f32) - 5.0).collect();
        let th: Vec<f32> = (0..l * d).map(|i| ((i * 13 % 7) as f32) - 3.0).collect();
        let mut p = vec![0.0f32; l * n];
        sgemm(&projection_gemm(n, l, d), &x, &th, &mut p);
        for li in 0..l {
            for i in 0..n {
                let want: f32 = (0..d).map(|k| th[li * d + k] * x[i * d + k]).sum();
                assert_eq!(p[li * n + i], want, "P[{li}, {i}]");
            }
        }
        let dv: Vec<f32> = (0..l * n).map(|i| (i % 5) as f32 - 2.0).collect();
        let mut g = vec![0.0f32; n * d];
        sgemm(&back_projection_gemm(n, l, d), &th, &dv, &mut g);
        for i in 0..n {
            for k in 0..d {
                let want: f32 = (0..l)
                    .map(|li| dv[li * n + i] * th[li * d + k])
                    .sum::<f32>()
                    / l as f32;
                assert!((g[i * d + k] - want).abs() < 1e-5, "G[{i}, {k}]");
            }
        }
    }
}
