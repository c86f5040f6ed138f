//! Copies parameter tensors between a burn module and the native engine's host vectors, in
//! the order burn's module visitor yields them (the struct fields' order).

use crate::error::{invalid, Result};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// Every float parameter of `module`: its shape and values, in visiting order.
pub fn read_params<B: Backend, M: Module<B>>(module: &M) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
    struct Collect(Vec<(Vec<usize>, Vec<f32>)>, Option<String>);
    impl<B: Backend> ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let tensor = param.val();
            let dims = tensor.dims().to_vec();
            match tensor.into_data().convert::<f32>().into_vec::<f32>() {
                Ok(values) => self.0.push((dims, values)),
                Err(e) => {
                    self.1.get_or_insert(format!("{e:?}"));
                }
            }
        }
    }
    let mut collect = Collect(Vec::new(), None);
    module.visit(&mut collect);
    match collect.1 {
        Some(e) => Err(invalid("parameters", format!("cannot read a tensor: {e}"))),
        None => Ok(collect.0),
    }
}

/// `module` with its float parameters replaced by `params` (same order and sizes as
/// [`read_params`] gave).
pub fn write_params<B: Backend, M: Module<B>>(module: M, params: Vec<Vec<f32>>) -> M {
    struct Load(std::vec::IntoIter<Vec<f32>>);
    impl<B: Backend> ModuleMapper<B> for Load {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let values = self
                .0
                .next()
                .expect("as many parameter tensors as read_params returned");
            param.map(|tensor| {
                let shape = tensor.shape();
                assert_eq!(shape.num_elements(), values.len(), "parameter size");
                Tensor::from_data(TensorData::new(values, shape), &tensor.device())
            })
        }
    }
    module.map(&mut Load(params.into_iter()))
}
